"""The path every simulated upstream request takes: log it, apply faults, check auth, run the handler.

Faults are applied before authentication because upstream's edge (Cloudflare, load balancers) answers
before the backend ever looks at a token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException

from sim import errors, media
from sim.faults import MODIFIERS, Fault, delay_of, respond
from sim.model import Account
from sim.state import SimState

SESSION_COOKIE = "__Secure-next-auth.session-token"


@dataclass(frozen=True)
class Part:
    """A file part of a multipart body, read in full before the handler runs under the state lock."""

    filename: str | None
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "sha256": media.sha256(self.data),
        }


@dataclass
class Call:
    request: Request[Any, Any, Any]
    route: str
    # Parsed JSON body, the fields of a form-encoded one, or a multipart one's fields (files as ``Part``).
    body: Any
    account: Account | None
    modifiers: list[Fault] = field(default_factory=list)

    def modifier(self, name: str) -> Fault | None:
        return next((f for f in self.modifiers if f.name == name), None)


Handler = Callable[[Call], Response[Any]]


def parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _form(request: Request[Any, Any, Any], raw: bytes) -> dict[str, str] | None:
    # OAuth clients may post form-encoded bodies; handlers see them as a dict, the log records only JSON.
    if not raw or "x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    try:
        return dict(parse_qsl(raw.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


async def _multipart(request: Request[Any, Any, Any]) -> dict[str, str | Part] | None:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return None
    try:
        form = await request.form()
    except HTTPException:
        # A malformed body is the handler's 400 to give, after the request has been logged.
        return None
    fields: dict[str, str | Part] = {}
    for name, value in form.multi_items():
        if name in fields:
            continue
        if isinstance(value, UploadFile):
            fields[name] = Part(value.filename or None, value.content_type, await value.read())
        else:
            fields[name] = value
    return fields


def _log_body(body: Any, multipart: dict[str, str | Part] | None) -> Any:
    # File bytes stay out of the log; their size and hash are enough to assert on.
    if multipart is None:
        return body
    return {k: v.summary() if isinstance(v, Part) else v for k, v in multipart.items()}


def bearer(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _resolve(sim: SimState, request: Request[Any, Any, Any], auth: str | None, body: Any) -> Account | None:
    """The account a request is about, as far as it can be told without rejecting anything."""
    if auth == "bearer":
        return sim.bearer_account(bearer(request))[0]
    if auth == "session":
        acct_id = sim.session_tokens.get(request.cookies.get(SESSION_COOKIE, ""))
    elif auth == "oauth":
        rt = body.get("refresh_token") if isinstance(body, dict) else None
        rt = rt if isinstance(rt, str) else ""
        acct_id = sim.refresh_tokens.get(rt) or sim.used_refresh_tokens.get(rt)
    elif auth == "media":
        params = request.path_params
        acct_id = sim.media_owner(
            params.get("task_id") or params.get("upload_id") or params.get("cameo_id") or ""
        )
    else:
        acct_id = None
    return sim.accounts.get(acct_id) if acct_id else None


async def run(
    sim: SimState, request: Request[Any, Any, Any], route: str, handler: Handler, *, auth: str | None
) -> Response[Any]:
    raw = await request.body()
    body = parse_json(raw)
    multipart = await _multipart(request)
    data = body if body is not None else multipart if multipart is not None else _form(request, raw)
    with sim.lock:
        account = _resolve(sim, request, auth, data)
        entry = sim.log_request(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query or "",
                "route": route,
                "account_id": account.id if account else None,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": _log_body(body, multipart),
                "status": None,
            }
        )
        fired = sim.faults.fire(route, account.id if account else None, request.url.path)
    delay = sum(delay_of(f) for f in fired if f.name == "slow")
    if delay:
        await asyncio.sleep(delay)
    terminal = next((f for f in fired if f.name not in MODIFIERS), None)
    if terminal is not None:
        limit = account.max_concurrent if account else sim.config.max_concurrent
        response = respond(terminal, max_concurrent=limit, country=account.country if account else None)
    else:
        call = Call(
            request=request,
            route=route,
            body=data,
            account=account,
            modifiers=[f for f in fired if f.name in MODIFIERS],
        )
        with sim.lock:
            response = _authenticate(sim, request) if auth == "bearer" else None
            if response is None:
                response = handler(call)
        response = await _spoil(call, response)
    with sim.lock:
        entry["status"] = response.status_code
    return response


def _authenticate(sim: SimState, request: Request[Any, Any, Any]) -> Response[Any] | None:
    _, problem = sim.bearer_account(bearer(request))
    if problem == "expired":
        return errors.upstream_error(401, errors.MSG_EXPIRED, "token_expired")
    if problem == "invalidated":
        return errors.upstream_error(401, errors.MSG_INVALIDATED, "token_invalidated")
    return None


async def _spoil(call: Call, response: Response[Any]) -> Response[Any]:
    """Apply create_then_* after the task really exists: the answer is late or an error."""
    if response.status_code >= 300:
        return response
    late = call.modifier("create_then_slow")
    if late is not None:
        await asyncio.sleep(delay_of(late))
        return response
    broken = call.modifier("create_then_500")
    if broken is not None:
        if "delay_s" in broken.params:
            await asyncio.sleep(delay_of(broken))
        status = broken.params.get("status", 500)
        return errors.server_error(status if isinstance(status, int) and 500 <= status < 600 else 500)
    return response
