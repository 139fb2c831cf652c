"""Admin: client API keys. A key is shown once, when it is made; only its hash is stored."""

from __future__ import annotations

import secrets
from typing import Literal

import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.auth import KeyCache, admin_guard
from api.bounds import check_text, row_id
from shared.errors import InvalidParam, NotFound
from shared.models import ApiKey
from shared.resources import Resources
from shared.secrets import token_hash
from shared.timeutil import epoch, utcnow

KEY_PREFIX = "sk-gw-"
MAX_LABEL = 200
MAX_RATE_LIMIT = 100_000


class KeyIn(msgspec.Struct, forbid_unknown_fields=False):
    label: str | None = None
    # Creates (POST requests) per minute; null or absent means unlimited.
    rate_limit: int | None = None


class KeyOut(msgspec.Struct):
    id: int
    prefix: str
    label: str | None
    rate_limit: int | None
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    # Only in the answer to the create, never again.
    key: str | None = None
    object: Literal["api_key"] = "api_key"


class KeyList(msgspec.Struct):
    data: list[KeyOut]
    object: Literal["list"] = "list"


def _out(row: ApiKey, key: str | None = None) -> KeyOut:
    assert row.id is not None
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        label=row.label,
        rate_limit=row.rate_limit,
        created_at=epoch(row.created_at) or 0,
        last_used_at=epoch(row.last_used_at),
        revoked_at=epoch(row.revoked_at),
        key=key,
    )


# What these routes do, also called by the console (api/routes/console.py).


async def create_key(services: Resources, data: KeyIn) -> KeyOut:
    if data.label is not None and len(data.label) > MAX_LABEL:
        raise InvalidParam(f"'label' is at most {MAX_LABEL} characters", param="label")
    check_text(data.label, "label")
    if data.rate_limit is not None and not 1 <= data.rate_limit <= MAX_RATE_LIMIT:
        raise InvalidParam(
            f"'rate_limit' must be 1 to {MAX_RATE_LIMIT} requests per minute, or null", param="rate_limit"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=token_hash(key), prefix=key[:12], label=data.label, rate_limit=data.rate_limit)
    async with services.sessions() as session:
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return _out(row, key)


async def all_keys(services: Resources) -> KeyList:
    async with services.sessions() as session:
        result = await session.execute(sa.select(ApiKey).order_by(ApiKey.id))
        return KeyList(data=[_out(row) for row in result.scalars().all()])


async def revoke_key(services: Resources, cache: KeyCache, key_id: int) -> KeyOut:
    if not row_id(key_id):
        raise NotFound(f"No API key with id {key_id}")
    async with services.sessions() as session:
        result = await session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=sa.func.coalesce(ApiKey.revoked_at, utcnow()))
            .returning(ApiKey)
            .execution_options(synchronize_session=False)
        )
        row = result.scalars().one_or_none()
        await session.commit()
    if row is None:
        raise NotFound(f"No API key with id {key_id}")
    cache.forget()  # this process stops accepting it at once; others within a few seconds
    return _out(row)


class KeyController(Controller):
    path = "/api/keys"
    guards = [admin_guard]
    tags = ["admin"]

    @post("", operation_id="createKey", status_code=200)
    async def create(self, data: JSONBody[KeyIn], services: NamedDependency[Resources]) -> KeyOut:
        return await create_key(services, data)

    @get("", operation_id="listKeys")
    async def list_keys(self, services: NamedDependency[Resources]) -> KeyList:
        return await all_keys(services)

    @delete("/{key_id:int}", operation_id="revokeKey", status_code=200)
    async def revoke(
        self, key_id: FromPath[int], request: Request, services: NamedDependency[Resources]
    ) -> KeyOut:
        return await revoke_key(services, request.app.state.key_cache, key_id)
