"""Client and admin keys. 401 means a missing or wrong key and nothing else.

Client keys come from the ``API_KEYS`` setting and from keys made through ``/api/keys`` (stored as a
sha256 hash; looked up at most every few seconds per key, so a revoked key stops working within that
time). A key made through the admin API may carry a rate limit: creates (POST requests) per minute.
"""

from __future__ import annotations

import hmac
import time
from datetime import timedelta

import msgspec
import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from shared.errors import Forbidden, RateLimited, Unauthorized
from shared.models import ApiKey
from shared.resources import Resources
from shared.secrets import key_fingerprint, token_hash
from shared.timeutil import utcnow

# How long a key lookup (found or not) is trusted before Postgres is asked again.
KEY_CACHE_S = 5.0
_LAST_USED_EVERY = timedelta(minutes=1)


class KnownKey(msgspec.Struct, frozen=True):
    id: int
    rate_limit: int | None


class KeyCache:
    """Admin-made keys by hash, briefly remembered per API process."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, KnownKey | None]] = {}

    def forget(self) -> None:
        self._entries.clear()

    async def lookup(self, services: Resources, key: str) -> KnownKey | None:
        hashed = token_hash(key)
        now = time.monotonic()
        cached = self._entries.get(hashed)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with services.sessions() as session:
            result = await session.execute(
                sa.select(ApiKey.id, ApiKey.rate_limit, ApiKey.last_used_at).where(
                    ApiKey.key_hash == hashed, ApiKey.revoked_at.is_(None)
                )
            )
            row = result.first()
            known = None if row is None else KnownKey(id=row[0], rate_limit=row[1])
            if row is not None and (row[2] is None or utcnow() - row[2] > _LAST_USED_EVERY):
                await session.execute(
                    sa.update(ApiKey).where(ApiKey.id == row[0]).values(last_used_at=utcnow())
                )
                await session.commit()
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[hashed] = (now + KEY_CACHE_S, known)
        return known


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


async def _known_client_key(connection: ASGIConnection, key: str) -> KnownKey | bool | None:
    """True for a key from the settings, the stored key for one made by an admin, None otherwise."""
    services: Resources = connection.app.state.services
    if _matches(key, services.settings.api_key_set):
        return True
    cache: KeyCache = connection.app.state.key_cache
    return await cache.lookup(services, key)


async def client_owner(connection: ASGIConnection) -> str | None:
    key = presented_key(connection)
    if key is None or not await _known_client_key(connection, key):
        return None
    return key_fingerprint(key)


async def client_auth(connection: ASGIConnection) -> None:
    """Every client route's ``before_request`` hook: a 401 for a missing or wrong key, a 429 over a key's
    rate limit, else the caller's owner id in ``connection.state.owner``. It runs before the body or any
    parameter is read, as a guard would; Litestar hands each guard a copy of the route handler, which cost
    more than the check itself on the most frequent requests (creates and polls)."""
    key = presented_key(connection)
    known = await _known_client_key(connection, key) if key is not None else None
    if key is None or not known:
        raise Unauthorized("Incorrect API key provided")
    if isinstance(known, KnownKey) and known.rate_limit and connection.scope["method"] == "POST":
        await _limit_rate(connection.app.state.services, known)
    connection.state.owner = key_fingerprint(key)


async def _limit_rate(services: Resources, known: KnownKey) -> None:
    """A fixed one-minute window per key, counted in Redis so every API process shares it."""
    now = time.time()
    minute = int(now // 60)
    key = services.keys.rate_window(known.id, minute)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
    if int(count) > (known.rate_limit or 0):
        raise RateLimited(
            f"Rate limit reached for this key: {known.rate_limit} requests per minute",
            retry_after=int(60 - now % 60) + 1,
            code="rate_limit_exceeded",
        )


async def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    settings = connection.app.state.services.settings
    key = presented_key(connection)
    if (
        key is not None
        and settings.admin_key
        and hmac.compare_digest(key.encode(), settings.admin_key.encode())
    ):
        return
    if key is not None and await _known_client_key(connection, key):
        raise Forbidden("This key cannot use the admin routes")
    raise Unauthorized("Incorrect admin key provided")
