"""Client and admin keys. 401 means a missing or wrong key and nothing else."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from shared.errors import Forbidden, Unauthorized
from shared.secrets import key_fingerprint


def presented_key(connection: ASGIConnection) -> str | None:
    """``Bearer <key>``, or the bare key as OneAPI's proxy channel sends it."""
    header = connection.headers.get("authorization", "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    key = rest.strip() if scheme.lower() == "bearer" else header
    return key or None


def _matches(key: str, candidates: frozenset[str]) -> bool:
    return any(hmac.compare_digest(key.encode(), candidate.encode()) for candidate in candidates)


def client_owner(connection: ASGIConnection) -> str | None:
    key = presented_key(connection)
    if key is None or not _matches(key, connection.app.state.services.settings.api_key_set):
        return None
    return key_fingerprint(key)


def client_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    owner = client_owner(connection)
    if owner is None:
        raise Unauthorized("Incorrect API key provided")
    connection.state.owner = owner


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    settings = connection.app.state.services.settings
    key = presented_key(connection)
    if (
        key is not None
        and settings.admin_key
        and hmac.compare_digest(key.encode(), settings.admin_key.encode())
    ):
        return
    if key is not None and _matches(key, settings.api_key_set):
        raise Forbidden("This key cannot use the admin routes")
    raise Unauthorized("Incorrect admin key provided")
