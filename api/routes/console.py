"""The operator console at ``/console``: server-rendered pages that htmx updates in place.

Every action calls the functions behind the admin JSON routes (``api/routes/tokens.py``, ``keys.py``,
``jobs.py``), so the console validates as they do and can do nothing they cannot. A page answers an htmx
request with its ``<main>`` alone and a plain browser request with the whole page, so each form also works
without JavaScript. Refusals (a bad value, a busy account) are shown in the page with the status code of
the JSON route. Logins, sessions and CSRF tokens are in ``api/console/session.py``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.channels import ChannelsPlugin
from litestar.connection import ASGIConnection
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.console.live import Listening, NewJob, follow_many
from api.console.overview import build as build_overview
from api.console.session import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    PATH,
    ConsoleSession,
    admin_key_matches,
    clear_cookie,
    client_address,
    close_session,
    count_failed_login,
    csrf_token_sent,
    current_session,
    forget_failed_logins,
    login_refused_for,
    open_session,
    same_token,
    set_login_cookie,
    set_session_cookie,
)
from api.console.templating import STATIC, template_config
from api.errors import EXCEPTION_HANDLERS
from api.routes.jobs import KINDS as JOB_KINDS
from api.routes.jobs import admin_job, cancel_job, find_jobs, job_detail, job_filter, job_listed
from api.routes.keys import KeyIn, all_keys, create_key, revoke_key
from api.routes.tokens import (
    KINDS,
    LIMITS,
    AccountIn,
    ImportIn,
    account_detail,
    add_account,
    check_account,
    disable_account,
    edit_account,
    enable_account,
    import_tokens,
    pool_accounts,
    refresh_now,
    remove_account,
)
from api.schemas import character_fields, content_url
from api.watch import with_heartbeat
from shared.errors import GatewayError, InvalidParam
from shared.events import encode as encode_event
from shared.jobs import JOB_ID
from shared.models import PUBLIC_STATUS, Job, JobState
from shared.resources import Resources
from shared.secrets import key_fingerprint
from shared.timeutil import utcnow

log = logging.getLogger("api.console")

JOBS_PER_PAGE = 50
# Running jobs one events stream follows at most (a page lists fewer).
MAX_FOLLOWED = 100
IMPORT_KINDS = ("auto", "at", "st", "rt")
SECURITY_HEADERS = {
    # Scripts and styles only from /console/static; media may come from a storage redirect elsewhere.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data:; media-src *; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class LoginRequired(Exception):
    """No valid console session: the browser is sent to the login page."""


class CsrfRefused(Exception):
    """A change without the session's CSRF token."""


async def console_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if handler.opt.get("console_public"):
        return
    services: Resources = connection.app.state.services
    session = await current_session(services, connection.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired
    connection.state.console = session
    if connection.scope["method"] not in ("GET", "HEAD"):
        sent = await csrf_token_sent(connection) if isinstance(connection, Request) else None
        if not same_token(session.csrf, sent):
            raise CsrfRefused


# Rendering ---------------------------------------------------------------------------------------------


def _htmx(request: Request) -> bool:
    # A history restore wants the whole page even though htmx sends it.
    return request.headers.get("hx-request") == "true" and "hx-history-restore-request" not in request.headers


def _render(request: Request, template: str, *, status: int = 200, **context: Any) -> Template:
    session: ConsoleSession | None = request.state.get("console")
    settings = request.app.state.services.settings
    base = {
        "csrf": session.csrf if session else "",
        "fragment": _htmx(request),
        "page": "",
        "flower_url": settings.flower_url,
        "notice": None,
        "error": None,
        "problem": None,
        "values": {},
    }
    return Template(template_name=template, context={**base, **context}, status_code=status)


class Problem:
    """A refusal to show next to the form that caused it; at the top of the page when what the form was
    about is gone (a 404)."""

    def __init__(self, form: str, exc: GatewayError) -> None:
        self.form = "page" if exc.status_code == 404 else form
        self.message = exc.message
        self.param = exc.param
        self.code = exc.code
        self.status = exc.status_code


def _error_page(request: Request, status: int, message: str) -> Response:
    if _htmx(request):
        response = _render(request, "error_flash.html", status=status, message=message)
        # Into the page's message area, whatever the request aimed at.
        response.headers.update({"hx-retarget": "#flash", "hx-reswap": "innerHTML"})
    else:
        response = _render(request, "error.html", status=status, message=message)
    response.headers.update(SECURITY_HEADERS)  # exception handlers' answers skip after_request
    return response


def _login_required(request: Request, _: LoginRequired) -> Response:
    target = f"{PATH}/login"
    if request.method == "GET" and not _htmx(request):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?" + urlencode({"next": here})
    if _htmx(request):
        return Response("", status_code=401, headers={"hx-redirect": target})
    return Redirect(target, status_code=303)


def _csrf_refused(request: Request, _: CsrfRefused) -> Response:
    return _error_page(
        request,
        403,
        "This form is out of date (its CSRF token is missing or wrong). Reload the page and retry.",
    )


def _as_page(json_handler: Any) -> Any:
    """The API's own handler (its logging and status), answered as a page instead of a JSON error body."""

    def handle(request: Request, exc: Exception) -> Response:
        answer = json_handler(request, exc)
        body = answer.content
        message = (
            body["error"]["message"] if isinstance(body, dict) and "error" in body else str(body).strip()
        )
        page = _error_page(request, answer.status_code, message or "Something went wrong")
        if "retry-after" in answer.headers:
            page.headers["retry-after"] = answer.headers["retry-after"]
        return page

    return handle


CONSOLE_ERRORS: dict[Any, Any] = {
    **{exc: _as_page(handler) for exc, handler in EXCEPTION_HANDLERS.items()},
    LoginRequired: _login_required,
    CsrfRefused: _csrf_refused,
}


async def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# Forms -------------------------------------------------------------------------------------------------


def _text(form: FormMultiDict, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _number(form: FormMultiDict, name: str, default: int | None) -> int | None:
    raw = _text(form, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParam(f"'{name}' must be a whole number", param=name) from None


def _checked(form: FormMultiDict, name: str) -> bool:
    return _text(form, name) in ("on", "true", "1", "yes")


def _kept(form: FormMultiDict, *names: str) -> dict[str, str]:
    """What to put back into a refused form: its plain fields, never a token or a proxy's password."""
    return {name: value for name in names if isinstance(value := form.get(name), str)}


def _safe_next(target: Any) -> str:
    """Where to go after login: a console page of this site, nothing else."""
    if not isinstance(target, str) or not target.startswith(PATH) or "\\" in target:
        return PATH
    parts = urlsplit(target)
    inside = parts.path == PATH or (parts.path.startswith(f"{PATH}/") and ".." not in parts.path.split("/"))
    if parts.scheme or parts.netloc or not inside:
        return PATH
    return target


def _owner_labels(services: Resources) -> dict[str, str]:
    """Owners with a name: the keys of the API_KEYS setting, by position. (Only the hash of a key made by an
    admin is kept, so its owner id cannot be worked out again; the console shows it once, with the key.)"""
    keys = [key.strip() for key in services.settings.api_keys.split(",") if key.strip()]
    return {key_fingerprint(key): f"API_KEYS #{number}" for number, key in enumerate(keys, 1)}


# Pages -------------------------------------------------------------------------------------------------


def _login_form(request: Request, next_page: str, *, status: int = 200, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = _render(
        request, "login.html", status=status, login_token=token, next_page=next_page, error=error
    )
    set_login_cookie(response, request, token)
    return response


async def _accounts_page(
    request: Request,
    services: Resources,
    *,
    status: int = 200,
    notice: str | None = None,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
    edit: int | None = None,
    delete: int | None = None,
    imported: Any = None,
) -> Template:
    accounts = (await pool_accounts(services)).data
    editing = next((a for a in accounts if a.id == edit), None) if edit is not None else None
    deleting = next((a for a in accounts if a.id == delete), None) if delete is not None else None
    return _render(
        request,
        "accounts.html",
        status=status,
        page="accounts",
        accounts=accounts,
        kinds=KINDS,
        limits=LIMITS,
        defaults=_DEFAULTS,
        import_kinds=IMPORT_KINDS,
        notice=notice,
        problem=problem,
        values=values or {},
        editing=editing,
        deleting=deleting,
        imported=imported,
    )


async def _keys_page(
    request: Request,
    services: Resources,
    *,
    status: int = 200,
    notice: str | None = None,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
    created: Any = None,
    revoking: int | None = None,
) -> Template:
    keys = (await all_keys(services)).data
    return _render(
        request,
        "keys.html",
        status=status,
        page="keys",
        keys=keys,
        notice=notice,
        problem=problem,
        values=values or {},
        created=created,
        created_owner=key_fingerprint(created.key) if created is not None and created.key else None,
        revoking=next((k for k in keys if k.id == revoking), None) if revoking is not None else None,
    )


def _media(job: Job, services: Resources) -> dict[str, Any] | None:
    """What the job made, as the detail shows it: signed links (relative, so they work behind any host)."""
    if job.state != JobState.COMPLETED or job.kind == "character" or job.deleted_at is not None:
        return None
    if job.media_purged_at is not None or (job.expires_at is not None and job.expires_at < utcnow()):
        return {"expired": True}
    url = content_url(job, "", services.url_key)
    poster = f"{url}&variant=thumbnail" if job.kind == "video" and job.thumbnail_key else None
    return {"expired": False, "kind": job.kind, "url": url, "poster": poster}


def _job_context(job: Job, services: Resources) -> dict[str, Any]:
    return {
        "job": admin_job(job),
        "row": job,
        "media": _media(job, services),
        "character": character_fields(job) if job.kind == "character" else None,
        "owners": _owner_labels(services),
    }


def _job_filters(
    status: str | None, kind: str | None, owner: str | None, account: str | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """A job list's filters as the page shows them, and as ``find_jobs``/``job_filter`` take them."""
    shown = {
        "status": (status or "").strip(),
        "kind": (kind or "").strip(),
        "owner": (owner or "").strip(),
        "account": (account or "").strip(),
    }
    if shown["account"] and not shown["account"].isdigit():
        raise InvalidParam("'account' must be an account id (a number)", param="account")
    return shown, {
        "status": shown["status"] or None,
        "kind": shown["kind"] or None,
        "account_id": int(shown["account"]) if shown["account"] else None,
        "owner": shown["owner"] or None,
    }


def _status_choices() -> list[str]:
    public = list(dict.fromkeys(PUBLIC_STATUS.values()))
    return public + [state for state in PUBLIC_STATUS if state not in public]


class ConsoleController(Controller):
    path = PATH
    guards = [console_guard]
    include_in_schema = False
    exception_handlers = CONSOLE_ERRORS
    after_request = _security_headers

    # Login -------------------------------------------------------------------------------------------

    @get("/login", opt={"console_public": True})
    async def login_page(
        self, request: Request, services: NamedDependency[Resources], next: FromQuery[str | None] = None
    ) -> Response:
        if await current_session(services, request.cookies.get(COOKIE)) is not None:
            return Redirect(_safe_next(next), status_code=303)
        return _login_form(request, _safe_next(next))

    @post("/login", opt={"console_public": True})
    async def login(self, request: Request, services: NamedDependency[Resources]) -> Response:
        form = await request.form()
        next_page = _safe_next(form.get("next"))
        if not same_token(request.cookies.get(LOGIN_COOKIE), _text(form, CSRF_FIELD)):
            message = "The login form had expired; here is a fresh one. Please log in again."
            return _login_form(request, next_page, status=403, error=message)
        if not services.settings.admin_key:
            message = "The console is off: the server has no ADMIN_KEY set."
            return _login_form(request, next_page, status=503, error=message)
        client = client_address(request)
        wait_s = await login_refused_for(services, client)
        if wait_s:
            message = f"Too many failed logins from your address; try again in {max(1, wait_s // 60)} min."
            response = _login_form(request, next_page, status=429, error=message)
            response.headers["retry-after"] = str(wait_s)
            return response
        if not admin_key_matches(services, _text(form, "admin_key") or ""):
            await count_failed_login(services, client)
            log.warning("console: failed login from %s", client)
            return _login_form(request, next_page, status=401, error="That is not the admin key.")
        await forget_failed_logins(services, client)
        log.info("console: login from %s", client)
        _, cookie = await open_session(services)
        response = Redirect(next_page, status_code=303)
        set_session_cookie(response, request, cookie, max(60, services.settings.console_session_ttl_s))
        clear_cookie(response, request, LOGIN_COOKIE, f"{PATH}/login")
        return response

    @post("/logout")
    async def logout(self, request: Request, services: NamedDependency[Resources]) -> Response:
        await close_session(services, request.state.console)
        response: Response = Redirect(f"{PATH}/login", status_code=303)
        if _htmx(request):
            response = Response("", headers={"hx-redirect": f"{PATH}/login"})
        clear_cookie(response, request)
        return response

    # Overview ----------------------------------------------------------------------------------------

    @get("")
    async def overview(self, request: Request, services: NamedDependency[Resources]) -> Response:
        accounts = (await pool_accounts(services)).data
        view = await build_overview(services, accounts)
        return _render(request, "overview.html", page="overview", view=view)

    # Accounts ----------------------------------------------------------------------------------------

    @get("/accounts")
    async def accounts(
        self,
        request: Request,
        services: NamedDependency[Resources],
        edit: FromQuery[int | None] = None,
        delete: FromQuery[int | None] = None,
    ) -> Response:
        """The pool; ``?edit=ID`` and ``?delete=ID`` open that account's edit form or delete confirmation."""
        for account_id in (edit, delete):
            if account_id is not None:
                await account_detail(services, account_id)  # a 404 page for an unknown id
        return await _accounts_page(request, services, edit=edit, delete=delete)

    @post("/accounts/add")
    async def account_add(self, request: Request, services: NamedDependency[Resources]) -> Response:
        form = await request.form()
        try:
            data = AccountIn(
                token=_text(form, "token") or "",
                st=_text(form, "st"),
                rt=_text(form, "rt"),
                client_id=_text(form, "client_id"),
                proxy_url=_text(form, "proxy_url"),
                remark=_text(form, "remark"),
                **{f"{k}_concurrency": _number(form, f"{k}_concurrency", d) for k, d in _DEFAULTS.items()},
            )
            account = await add_account(services, data)
        except GatewayError as exc:
            values = _kept(form, "client_id", "remark", *(f"{k}_concurrency" for k in KINDS))
            return await _accounts_page(
                request, services, status=exc.status_code, problem=Problem("add", exc), values=values
            )
        notice = f"Added account {account.id} ({account.email or 'no e-mail'}): {account.status}."
        return await _accounts_page(request, services, notice=notice)

    @post("/accounts/import")
    async def account_import(self, request: Request, services: NamedDependency[Resources]) -> Response:
        form = await request.form()
        try:
            kind = _text(form, "kind") or "auto"
            if kind not in IMPORT_KINDS:
                raise InvalidParam(f"'kind' must be one of {', '.join(IMPORT_KINDS)}", param="kind")
            data = ImportIn(
                tokens=form.get("tokens") if isinstance(form.get("tokens"), str) else "",
                kind=kind,  # type: ignore[arg-type]
                client_id=_text(form, "client_id"),
                proxy_url=_text(form, "proxy_url"),
                remark=_text(form, "remark"),
                **{f"{k}_concurrency": _number(form, f"{k}_concurrency", d) for k, d in _DEFAULTS.items()},
            )
            result = await import_tokens(services, data)
        except GatewayError as exc:
            values = _kept(form, "kind", "client_id", "remark", *(f"{k}_concurrency" for k in KINDS))
            return await _accounts_page(
                request, services, status=exc.status_code, problem=Problem("import", exc), values=values
            )
        notice = (
            f"Import: {result.imported} imported, {result.updated} updated, "
            f"{result.duplicates} duplicates, {result.failed} failed."
        )
        return await _accounts_page(request, services, notice=notice, imported=result)

    @post("/accounts/{account_id:int}/test")
    async def account_test(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        return await self._account_action(request, services, account_id, check_account, "tested")

    @post("/accounts/{account_id:int}/refresh")
    async def account_refresh(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        return await self._account_action(request, services, account_id, refresh_now, "refreshed")

    @post("/accounts/{account_id:int}/enable")
    async def account_enable(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        return await self._account_action(request, services, account_id, enable_account, "enabled")

    @post("/accounts/{account_id:int}/disable")
    async def account_disable(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        return await self._account_action(request, services, account_id, disable_account, "disabled")

    async def _account_action(
        self, request: Request, services: Resources, account_id: int, action: Any, done: str
    ) -> Response:
        try:
            account = await action(services, account_id)
        except GatewayError as exc:
            problem = Problem(f"account-{account_id}", exc)
            return await _accounts_page(request, services, status=exc.status_code, problem=problem)
        reason = f" ({account.reason})" if account.reason else ""
        notice = f"Account {account_id} {done}: now {account.status}{reason}."
        return await _accounts_page(request, services, notice=notice)

    @post("/accounts/{account_id:int}/edit")
    async def account_edit(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        form = await request.form()
        try:
            changes: dict[str, Any] = {"remark": _text(form, "remark")}
            for kind in KINDS:
                value = _number(form, f"{kind}_concurrency", None)
                if value is not None:
                    changes[f"{kind}_concurrency"] = value
            # The proxy is shown masked, so an empty field keeps it; clearing it is a box of its own.
            if _checked(form, "clear_proxy"):
                changes["proxy_url"] = None
            elif proxy := _text(form, "proxy_url"):
                changes["proxy_url"] = proxy
            await edit_account(services, account_id, changes)
        except GatewayError as exc:
            values = _kept(form, "remark", *(f"{k}_concurrency" for k in KINDS))
            return await _accounts_page(
                request,
                services,
                status=exc.status_code,
                problem=Problem("edit", exc),
                values=values,
                edit=account_id,
            )
        return await _accounts_page(request, services, notice=f"Account {account_id} saved.")

    @post("/accounts/{account_id:int}/delete")
    async def account_delete(
        self, request: Request, services: NamedDependency[Resources], account_id: FromPath[int]
    ) -> Response:
        form = await request.form()
        try:
            await remove_account(services, account_id, force=_checked(form, "force"))
        except GatewayError as exc:
            return await _accounts_page(
                request, services, status=exc.status_code, problem=Problem("delete", exc), delete=account_id
            )
        return await _accounts_page(request, services, notice=f"Account {account_id} deleted.")

    # Jobs --------------------------------------------------------------------------------------------

    @get("/jobs")
    async def jobs(
        self,
        request: Request,
        services: NamedDependency[Resources],
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        owner: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
    ) -> Response:
        filters = {"status": status or "", "kind": kind or "", "owner": owner or "", "account": account or ""}
        listing, problem = None, None
        try:
            filters, wanted = _job_filters(status, kind, owner, account)
            listing = await find_jobs(
                services, **wanted, before=(before or "").strip() or None, limit=JOBS_PER_PAGE
            )
        except GatewayError as exc:
            problem = Problem("filter", exc)
        return _render(
            request,
            "jobs.html",
            status=problem.status if problem else 200,
            page="jobs",
            jobs=listing.data if listing else [],
            next_before=listing.next_before if listing else None,
            filters=filters,
            query=urlencode({k: v for k, v in filters.items() if v}),
            # The newest jobs: jobs made while the page is open join it.
            live=problem is None and not (before or "").strip(),
            problem=problem,
            statuses=_status_choices(),
            kinds=JOB_KINDS,
            owners=_owner_labels(services),
        )

    @get("/jobs/events")
    async def job_events(
        self,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
        ids: FromQuery[str] = "",
        live: FromQuery[bool] = False,
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        owner: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
    ) -> ServerSentEvent:
        """Events (``job``: a JobEvent as JSON) of the listed jobs until each has ended, then ``end``.

        ``live``: jobs created meanwhile that the filters match come as ``created`` (``{"job_id"}``) and are
        followed too, from the ``listening`` event on; the stream then lasts until the page closes it.
        """
        job_ids = [job_id for job_id in ids.split(",") if job_id]
        fewest = 0 if live else 1
        if not fewest <= len(job_ids) <= MAX_FOLLOWED or not all(JOB_ID.fullmatch(j) for j in job_ids):
            raise InvalidParam(
                f"'ids' takes {fewest} to {MAX_FOLLOWED} job ids, comma-separated", param="ids"
            )
        listed = None
        if live:
            where = job_filter(**_job_filters(status, kind, owner, account)[1])

            async def is_listed(job_id: str) -> bool:
                return await job_listed(services, job_id, where)

            listed = is_listed

        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            events = follow_many(channels, services, job_ids, listed=listed, most=MAX_FOLLOWED)
            keepalive_s = services.settings.sse_keepalive_s
            async for event in with_heartbeat(events, keepalive_s, stream="console_jobs"):
                if event is None:
                    yield ServerSentEventMessage(comment="keep-alive")
                elif isinstance(event, Listening):
                    yield ServerSentEventMessage(data="{}", event="listening")
                elif isinstance(event, NewJob):
                    yield ServerSentEventMessage(
                        data=msgspec.json.encode({"job_id": event.job_id}).decode(), event="created"
                    )
                else:
                    yield ServerSentEventMessage(data=encode_event(event).decode(), event="job")
            yield ServerSentEventMessage(data="{}", event="end")

        return ServerSentEvent(stream(), headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @get("/jobs/{job_id:str}/row")
    async def job_row(
        self,
        request: Request,
        services: NamedDependency[Resources],
        job_id: FromPath[str],
        new: FromQuery[bool] = False,
    ) -> Response:
        """A job's table row; ``new``: with the hidden detail row that goes with it (a job added live)."""
        job = await job_detail(services, job_id)
        return _render(request, "job_new.html" if new else "job_row.html", **_job_context(job, services))

    @get("/jobs/{job_id:str}")
    async def job(
        self, request: Request, services: NamedDependency[Resources], job_id: FromPath[str]
    ) -> Response:
        """The job's attempts, upstream ids, error and media: a table row's detail, or a page of its own."""
        job = await job_detail(services, job_id)
        template = "job_detail.html" if _htmx(request) else "job.html"
        return _render(request, template, page="jobs", **_job_context(job, services))

    @post("/jobs/{job_id:str}/cancel")
    async def job_cancel(
        self, request: Request, services: NamedDependency[Resources], job_id: FromPath[str]
    ) -> Response:
        job = await cancel_job(services, job_id)  # a finished job: 409, shown in the page's message area
        if _htmx(request):
            return _render(request, "job_row.html", **_job_context(job, services))
        return _render(request, "job.html", page="jobs", notice="Cancelled.", **_job_context(job, services))

    # Keys --------------------------------------------------------------------------------------------

    @get("/keys")
    async def keys(
        self, request: Request, services: NamedDependency[Resources], revoke: FromQuery[int | None] = None
    ) -> Response:
        """The client keys; ``?revoke=ID`` asks to confirm revoking one."""
        return await _keys_page(request, services, revoking=revoke)

    @post("/keys/create")
    async def key_create(self, request: Request, services: NamedDependency[Resources]) -> Response:
        form = await request.form()
        try:
            created = await create_key(
                services, KeyIn(label=_text(form, "label"), rate_limit=_number(form, "rate_limit", None))
            )
        except GatewayError as exc:
            values = _kept(form, "label", "rate_limit")
            return await _keys_page(
                request, services, status=exc.status_code, problem=Problem("create", exc), values=values
            )
        return await _keys_page(request, services, created=created)

    @post("/keys/{key_id:int}/revoke")
    async def key_revoke(
        self, request: Request, services: NamedDependency[Resources], key_id: FromPath[int]
    ) -> Response:
        try:
            revoked = await revoke_key(services, request.app.state.key_cache, key_id)
        except GatewayError as exc:
            return await _keys_page(request, services, status=exc.status_code, problem=Problem("revoke", exc))
        return await _keys_page(request, services, notice=f"Key {revoked.prefix}… revoked.")


# The concurrency an added or imported account gets when the form leaves it empty: the JSON routes' defaults.
_DEFAULTS = {
    kind: field.default
    for kind in KINDS
    for field in msgspec.structs.fields(AccountIn)
    if field.name == f"{kind}_concurrency"
}


def console_static() -> Router:
    """htmx, the stylesheet and the console's script; public (the login page needs them too)."""
    return create_static_files_router(
        path=f"{PATH}/static", directories=[STATIC], name="console-static", include_in_schema=False
    )


def console_templates() -> TemplateConfig:
    return template_config()
