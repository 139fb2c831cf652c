"""Leasing from a full pool on real Postgres and Redis (a database of its own, so the pool is only this
module's accounts): jobs that must wait cost one Redis read, and a slot given back is taken at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from shared.metrics import LEASE_OPERATIONS
from shared.models import Account
from shared.resources import Resources
from shared.settings import Settings
from tests.infra import Services
from tests.integration.conftest import own_resources

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_database(services: Services) -> str:
    return services.create_database()


@asynccontextmanager
async def pool_of(settings: Settings, database: str, accounts: int, slots: int) -> AsyncIterator[Resources]:
    """Resources on ``database`` with ``accounts`` accounts of ``slots`` video slots each."""
    async with own_resources(settings, database_url=database) as resources:
        async with resources.sessions() as session:
            for n in range(accounts):
                sealed = resources.box.seal(f"at-{n}")
                session.add(
                    Account(token_hash=f"lease-{n}", access_token_enc=sealed, video_concurrency=slots)
                )
            await session.commit()
        yield resources


@pytest.fixture
async def ctx(settings: Settings, own_database: str) -> AsyncIterator[Resources]:
    async with pool_of(settings, own_database, accounts=2, slots=1) as resources:
        yield resources


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


@pytest.fixture
async def roomy(settings: Settings, own_database: str) -> AsyncIterator[Resources]:
    async with pool_of(settings, own_database, accounts=3, slots=3) as resources:
        yield resources


async def test_concurrent_leases_spread_over_the_pool_before_any_account_takes_a_second_job(
    roomy: Resources,
) -> None:
    # Each account could take three of these at once. Submits that run together must still go one to an
    # account: a lease that finds the rows locked by another must not pick the account that one is taking.
    for wave in range(3):
        taken = await asyncio.gather(*(roomy.pool.lease("video", f"wave{wave}-{n}") for n in range(3)))
        assert all(account is not None for account in taken)
        counts = [await roomy.pool.leases.in_use(account.id, "video") for account in taken]
        assert len({account.id for account in taken}) == 3, f"wave {wave}: {[a.id for a in taken]}"
        assert counts == [wave + 1] * 3
