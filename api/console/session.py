"""Console logins: a server-side session behind a signed cookie, and the CSRF token each session carries.

The session lives in Redis (``console:session:{id}``, expiring after ``CONSOLE_SESSION_TTL_S``), so logging
out ends it everywhere at once. The cookie holds only the session id and its HMAC, signed with a key derived
from ``ADMIN_KEY`` and ``ENCRYPTION_KEY``: a forged or foreign cookie is refused without a Redis read, and
changing the admin key ends every session. Every change (a POST) must carry the session's CSRF token, in the
``X-CSRF-Token`` header (htmx sends it from ``hx-headers``) or the ``csrf_token`` form field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection

from shared.resources import Resources
from shared.secrets import sign, verify

COOKIE = "sg_console"
# Before login there is no session: the login form's CSRF token is matched against this cookie instead.
LOGIN_COOKIE = "sg_console_login"
PATH = "/console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# Failed logins per client address, within LOGIN_WINDOW_S, before further attempts are refused.
LOGIN_ATTEMPTS = 10
LOGIN_WINDOW_S = 900
LOGIN_FORM_TTL_S = 3600


class ConsoleSession(msgspec.Struct, frozen=True):
    id: str
    csrf: str
    created_at: float


class _Stored(msgspec.Struct):
    csrf: str
    created_at: float


def _signing_key(services: Resources) -> str:
    settings = services.settings
    material = f"console-session\0{settings.admin_key}\0{settings.encryption_key}".encode()
    return hashlib.sha256(material).hexdigest()


def is_https(connection: ASGIConnection) -> bool:
    """Served over https, directly or behind a proxy that says so.

    The forwarding headers are believed from anyone: all a client gains by faking them is a cookie its own
    browser will not send back over plain http.
    """
    if connection.scope.get("scheme") == "https":
        return True
    proto = connection.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto == "https":
        return True
    forwarded = connection.headers.get("forwarded", "").split(",")[0].replace(" ", "").lower()
    return "proto=https" in forwarded.split(";")


async def open_session(services: Resources) -> tuple[ConsoleSession, str]:
    """A new session and the cookie value that names it."""
    session = ConsoleSession(
        id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created_at=time.time()
    )
    stored = msgspec.json.encode(_Stored(csrf=session.csrf, created_at=session.created_at))
    ttl = max(60, services.settings.console_session_ttl_s)
    await services.redis.set(services.keys.console_session(session.id), stored, ex=ttl)
    return session, f"{session.id}.{sign(_signing_key(services), session.id)}"


async def current_session(services: Resources, cookie: str | None) -> ConsoleSession | None:
    if not cookie or not services.settings.admin_key:
        return None
    session_id, _, signature = cookie.partition(".")
    if not session_id or not signature or not verify(_signing_key(services), session_id, signature):
        return None
    raw = await services.redis.get(services.keys.console_session(session_id))
    if raw is None:
        return None
    try:
        stored = msgspec.json.decode(raw, type=_Stored)
    except msgspec.DecodeError:
        return None
    return ConsoleSession(id=session_id, csrf=stored.csrf, created_at=stored.created_at)


async def close_session(services: Resources, session: ConsoleSession) -> None:
    await services.redis.delete(services.keys.console_session(session.id))


def set_session_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        path=PATH,
        max_age=max_age,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str = COOKIE, path: str = PATH) -> None:
    response.set_cookie(
        name, "", path=path, max_age=0, httponly=True, secure=is_https(request), samesite="strict"
    )


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path=f"{PATH}/login",
        max_age=LOGIN_FORM_TTL_S,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


async def csrf_token_sent(request: Request) -> str | None:
    """The token a change carries: the header htmx adds, else the form field of a plain form."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type, _ = request.content_type
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def admin_key_matches(services: Resources, given: str) -> bool:
    expected = services.settings.admin_key
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_refused_for(services: Resources, client: str) -> int:
    """Seconds until this client may try again, or 0 while it has attempts left."""
    key = services.keys.console_login_failures(client)
    failures = await services.redis.get(key)
    if failures is None or int(failures) < LOGIN_ATTEMPTS:
        return 0
    return max(1, int(await services.redis.ttl(key)))


async def count_failed_login(services: Resources, client: str) -> None:
    """Each failure restarts the window, so a steady guesser stays locked out."""
    key = services.keys.console_login_failures(client)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOGIN_WINDOW_S)
        await pipe.execute()


async def forget_failed_logins(services: Resources, client: str) -> None:
    await services.redis.delete(services.keys.console_login_failures(client))
