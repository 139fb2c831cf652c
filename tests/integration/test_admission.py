"""Creates that arrive together share one INSERT and one Redis round trip (shared.admission), and each
still gets its own stored job, its own submit message and its own announcement."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from shared.admission import GroupCommit
from shared.db import create_engine, create_sessionmaker
from shared.models import Job
from shared.settings import Settings
from tests.integration.conftest import CLIENT

pytestmark = pytest.mark.anyio


async def _rows(settings: Settings, ids: list[str]) -> list[str]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.execute(sa.select(Job.id).where(Job.id.in_(ids)))).scalars())
    finally:
        await engine.dispose()


async def _submitted(settings: Settings, ids: set[str]) -> list[str]:
    """The job ids of the submit messages on the queue that belong to ``ids``, with repeats."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        raw = await client.lrange(f"{settings.redis_prefix}submit", 0, -1)
    finally:
        await client.aclose()
    found = []
    for message in raw:
        job_id = json.loads(base64.b64decode(json.loads(message)["body"]))[0][0]
        if job_id in ids:
            found.append(job_id)
    return found


async def test_concurrent_creates_each_get_a_stored_job_and_one_submit_message(
    client: AsyncTestClient, settings: Settings
) -> None:
    announced: list[str] = []
    listener = aioredis.Redis.from_url(settings.redis_url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(f"{settings.redis_prefix}jobs:created")
    try:
        answers = await asyncio.gather(
            *(client.post("/v1/videos", json={"prompt": f"together {i}"}, headers=CLIENT) for i in range(40))
        )
        assert [answer.status_code for answer in answers] == [200] * 40
        ids = [answer.json()["id"] for answer in answers]
        assert len(set(ids)) == 40
        assert [answer.json()["prompt"] for answer in answers] == [f"together {i}" for i in range(40)]
        assert sorted(await _rows(settings, ids)) == sorted(ids)
        assert sorted(await _submitted(settings, set(ids))) == sorted(ids)
        deadline = asyncio.get_running_loop().time() + 5
        while len(announced) < 40 and asyncio.get_running_loop().time() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message["data"].decode() in ids:
                announced.append(message["data"].decode())
        assert sorted(announced) == sorted(ids)
    finally:
        await pubsub.aclose()
        await listener.aclose()


async def test_concurrent_repeats_of_one_idempotency_key_store_one_job(
    client: AsyncTestClient, settings: Settings
) -> None:
    headers = {**CLIENT, "Idempotency-Key": "together-once"}
    answers = await asyncio.gather(
        *(client.post("/v1/videos", json={"prompt": "once only"}, headers=headers) for _ in range(12))
    )
    assert {answer.status_code for answer in answers} == {200}
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1
    assert await _rows(settings, list(ids)) == list(ids)
    assert await _submitted(settings, ids) == list(ids)


async def test_a_round_takes_what_arrived_meanwhile_and_failures_reach_only_their_callers() -> None:
    rounds: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        rounds.append(items)
        await asyncio.sleep(0.01)
        if 99 in items:
            raise RuntimeError("the round failed")
        return [ValueError(item) if item == 13 else item * 2 for item in items]

    batch: GroupCommit[int, int] = GroupCommit(flush, max_size=4)
    results = await asyncio.gather(*(batch.submit(i) for i in range(10)), return_exceptions=True)
    assert [str(r) if isinstance(r, BaseException) else r for r in results] == [i * 2 for i in range(10)]
    # What arrived before a round starts goes in it, four at most; the rest go in the next rounds.
    assert rounds == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    rounds.clear()
    results = await asyncio.gather(batch.submit(13), batch.submit(14), return_exceptions=True)
    assert isinstance(results[0], ValueError) and results[1] == 28

    failed = await asyncio.gather(batch.submit(99), batch.submit(1), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in failed)

    # A caller that goes away does not cancel the round the others wait on.
    first = asyncio.create_task(batch.submit(5))
    second = asyncio.create_task(batch.submit(6))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 12
    assert rounds[-1] == [5, 6]
