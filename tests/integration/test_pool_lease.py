"""Leasing from a full pool on real Postgres and Redis (a database of its own, so the pool is only this
module's accounts): jobs that must wait cost one Redis read, and a slot given back is taken at once."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import msgspec
import pytest

from shared.metrics import LEASE_OPERATIONS
from shared.models import Account
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings
from tests.infra import Services

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_database(services: Services) -> str:
    return services.create_database()


@pytest.fixture
async def ctx(settings: Settings, own_database: str) -> AsyncIterator[Resources]:
    own = msgspec.structs.replace(
        settings,
        database_url=own_database,
        redis_prefix=f"{settings.redis_prefix}{secrets.token_hex(3)}:",
    )
    resources = Resources.build(own, create_celery(own), db_pool_size=2)
    async with resources.sessions() as session:
        for n in range(2):
            session.add(
                Account(
                    token_hash=f"lease-{n}",
                    access_token_enc=resources.box.seal(f"at-{n}"),
                    video_concurrency=1,
                )
            )
        await session.commit()
    try:
        yield resources
    finally:
        async for key in resources.redis.scan_iter(match=resources.keys.pattern()):
            await resources.redis.delete(key)
        await resources.aclose()


def passes_over_a_full_pool() -> float:
    return LEASE_OPERATIONS.labels("video", "full")._value.get()


async def test_a_full_pool_parks_jobs_without_reading_it_again_until_a_slot_is_given_back(
    ctx: Resources,
) -> None:
    first = await ctx.pool.lease("video", "job-1")
    second = await ctx.pool.lease("video", "job-2")
    assert first is not None and second is not None and first.id != second.id

    before = passes_over_a_full_pool()
    assert await ctx.pool.lease("video", "job-3") is None
    assert passes_over_a_full_pool() > before  # the first refusal read the pool
    seen = passes_over_a_full_pool()
    for n in range(4, 10):
        assert await ctx.pool.lease("video", f"job-{n}") is None
    assert passes_over_a_full_pool() == seen  # the next ones did not

    await ctx.pool.leases.release(first.id, "video", "job-1")
    taken = await ctx.pool.lease("video", "job-10")
    assert taken is not None and taken.id == first.id


async def test_a_lease_for_named_accounts_always_reads_them(ctx: Resources) -> None:
    first = await ctx.pool.lease("video", "job-1")
    second = await ctx.pool.lease("video", "job-2")
    assert first is not None and second is not None
    assert await ctx.pool.lease("video", "job-3") is None
    # The job's own account (a retry that sticks to it) is asked, not the memory of a full pool.
    assert (await ctx.pool.lease("video", "job-1", only=first.id)).id == first.id
