"""The lease scripts on a real Redis: atomic slots per account, TTLs, rebuild after loss."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from shared.leases import Leases
from shared.names import Keys
from tests.infra import Services

pytestmark = pytest.mark.anyio


@pytest.fixture
async def leases(services: Services):
    redis = Redis.from_url(services.redis_url)
    keys = Keys(f"{services.prefix}{secrets.token_hex(3)}:")
    yield Leases(redis, keys, ttl_s=60)
    async for key in redis.scan_iter(match=keys.pattern()):
        await redis.delete(key)
    await redis.aclose()


async def test_limit_is_never_exceeded_under_concurrency(leases: Leases) -> None:
    results = await asyncio.gather(*(leases.acquire("video", f"job{i}", [(1, 3)]) for i in range(20)))
    assert results.count(1) == 3 and results.count(None) == 17
    assert await leases.in_use(1, "video") == 3


async def test_least_busy_account_with_room_wins_the_first_of_equals(leases: Leases) -> None:
    pool = [(1, 2), (2, 2), (3, 2)]
    taken = [await leases.acquire("video", f"job{i}", pool) for i in range(6)]
    # Each account takes one before any takes a second, in the order given.
    assert taken == [1, 2, 3, 1, 2, 3]
    assert await leases.acquire("video", "job6", pool) is None
    # A redelivered submit keeps the slot it holds.
    assert await leases.acquire("video", "job4", pool) == 2
    await leases.release(3, "video", "job2")
    assert await leases.acquire("video", "job7", [(1, 2), (2, 2), (3, 2), (4, 0)]) == 3
    assert await leases.acquire("video", "job8", [(4, 0)]) is None
    assert await leases.acquire("video", "job9", []) is None


async def test_kinds_and_zero_limits_are_separate(leases: Leases) -> None:
    assert await leases.acquire("video", "v", [(7, 1)]) == 7
    assert await leases.acquire("image", "i", [(7, 1)]) == 7
    assert await leases.acquire("image", "j", [(8, 0)]) is None


async def test_expired_leases_free_themselves(services: Services) -> None:
    redis = Redis.from_url(services.redis_url)
    keys = Keys(f"{services.prefix}{secrets.token_hex(3)}:")
    short = Leases(redis, keys, ttl_s=0.2)
    try:
        assert await short.acquire("video", "dead-worker-job", [(1, 1)]) == 1
        assert await short.acquire("video", "next", [(1, 1)]) is None
        await asyncio.sleep(0.3)
        assert await short.acquire("video", "next", [(1, 1)]) == 1
    finally:
        await redis.delete(keys.lease(1, "video"))
        await redis.aclose()


async def test_renew_rebuilds_slots_lost_with_redis(leases: Leases) -> None:
    await leases.acquire("video", "x", [(5, 2)])
    await leases._redis.delete(leases._keys.lease(5, "video"))  # what a Redis restart does
    await leases.renew(5, "video", ["x", "y"])
    assert await leases.in_use(5, "video") == 2
    assert await leases.acquire("video", "z", [(5, 2)]) is None
