"""The sweeper on real Postgres and Redis: leases rebuilt from the job rows, lost steps sent again once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from shared.models import Job, JobState
from shared.queue import TaskMessages
from shared.resources import Resources
from shared.settings import Settings
from shared.timeutil import utcnow
from tests.integration.conftest import insert_job, own_resources
from worker.engine import sweep

pytestmark = pytest.mark.anyio


async def _on_queue(ctx: Resources, queue: str) -> list[str | int | None]:
    """The ids of the messages waiting on a queue, oldest first: what was sent and not yet taken."""
    waiting = await ctx.redis.lrange(f"{ctx.keys.prefix}{queue}", 0, -1)
    return [TaskMessages.argument_of(raw) for raw in reversed(waiting)]


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[Resources]:
    async with own_resources(settings) as resources:
        # The account ids these tests use are their own: nothing else holds slots on them.
        async with resources.sessions() as session:
            await session.execute(sa.delete(Job).where(Job.account_id.in_([9001, 9002])))
            await session.commit()
        try:
            yield resources
        finally:
            async with resources.sessions() as session:
                await session.execute(sa.delete(Job).where(Job.account_id.in_([9001, 9002])))
                await session.commit()


async def _job(
    ctx: Resources, state: str, *, kind: str = "video", account_id: int | None = 9001, **values: Any
) -> str:
    return await insert_job(ctx.jobs, state, kind=kind, account_id=account_id, **values)


async def _members(ctx: Resources, account_id: int, kind: str) -> set[str]:
    return {m.decode() for m in await ctx.redis.zrange(ctx.keys.lease(account_id, kind), 0, -1)}


async def test_leases_come_back_from_the_rows_that_hold_slots(ctx: Resources) -> None:
    submitting = await _job(ctx, JobState.SUBMITTING)
    running = await _job(ctx, JobState.RUNNING)
    character = await _job(ctx, JobState.FINALIZING, kind="character", account_id=9002)
    await _job(ctx, JobState.FINALIZING)  # a video downloading gave its slot back already
    await _job(ctx, JobState.QUEUED, account_id=None)

    # Redis lost everything (a restart): the rows still say who holds what.
    assert await sweep.rebuild_leases(ctx) >= 3
    assert await _members(ctx, 9001, "video") == {submitting, running}
    assert await _members(ctx, 9002, "character") == {character}
    assert await ctx.pool.leases.in_use(9001, "video") == 2


async def test_a_slot_let_go_during_the_rebuild_is_released_again(ctx: Resources, monkeypatch) -> None:
    done = await _job(ctx, JobState.RUNNING)
    reads = iter([{(done, 9001, "video")}, set()])

    async def holding_slots() -> set[tuple[str, int, str]]:
        return next(reads)

    # The job completes (and releases its slot) between the sweeper's read and its renew.
    monkeypatch.setattr(ctx.jobs, "holding_slots", holding_slots)
    await sweep.rebuild_leases(ctx)
    assert await _members(ctx, 9001, "video") == set()


async def test_a_lost_finalize_is_sent_again_once_per_period(ctx: Resources) -> None:
    stale = utcnow() - timedelta(seconds=ctx.settings.requeue_after_s + 5)
    job_id = await _job(ctx, JobState.FINALIZING)
    async with ctx.sessions() as session:
        await session.execute(sa.update(Job).where(Job.id == job_id).values(updated_at=stale))
        await session.commit()
    await sweep.sweep(ctx)
    await sweep.sweep(ctx)
    assert (await _on_queue(ctx, "finalize")).count(job_id) == 1


async def test_a_submit_whose_heartbeat_stopped_is_resumed(ctx: Resources) -> None:
    silent = utcnow() - timedelta(seconds=3 * ctx.settings.step_heartbeat_s + 5)
    dead = await _job(ctx, JobState.SUBMITTING, submit_started_at=silent)
    alive = await _job(ctx, JobState.SUBMITTING, submit_started_at=utcnow())
    await sweep.sweep(ctx)
    submitted = await _on_queue(ctx, "submit")
    assert dead in submitted and alive not in submitted


async def test_only_submits_sent_before_the_oldest_waiting_message_count_as_lost(ctx: Resources) -> None:
    """Behind a backlog a message waits longer than REQUEUE_AFTER_S without being lost: the sweeper sends
    again only what was sent before the oldest message still on the queue, and everything once it drains."""
    now = utcnow()
    lost = await _job(ctx, JobState.QUEUED, account_id=None, enqueued_at=now - timedelta(minutes=10))
    waiting = await _job(ctx, JobState.QUEUED, account_id=None, enqueued_at=now - timedelta(minutes=5))
    behind = await _job(ctx, JobState.QUEUED, account_id=None, enqueued_at=now - timedelta(minutes=2))
    await ctx.admission.start([waiting])  # its real message, on the real queue

    assert await ctx.submit_messages.oldest_waiting(ctx.redis) == waiting
    await sweep.sweep(ctx)
    assert await _on_queue(ctx, "submit") == [waiting, lost]

    # The queue drained (the message was taken) and nobody moved the other two: both are lost now.
    await ctx.redis.delete(f"{ctx.keys.prefix}submit")
    assert await ctx.submit_messages.oldest_waiting(ctx.redis) is None
    await sweep.sweep(ctx)
    # (The lost one was sent in the first sweep, which marked it sent then.)
    assert sorted(await _on_queue(ctx, "submit")) == sorted([waiting, behind])


async def test_a_finalize_waiting_behind_a_backlog_is_not_sent_again(ctx: Resources) -> None:
    """The same rule for finalize messages: only what was sent before the oldest one still waiting."""
    now = utcnow()
    lost = await _job(ctx, JobState.FINALIZING, updated_at=now - timedelta(minutes=10))
    waiting = await _job(ctx, JobState.FINALIZING, updated_at=now - timedelta(minutes=5))
    behind = await _job(ctx, JobState.FINALIZING, updated_at=now - timedelta(minutes=2))
    await ctx.finalize_messages.send(ctx.redis, [waiting])

    assert await ctx.finalize_messages.oldest_waiting(ctx.redis) == waiting
    await sweep.sweep(ctx)
    assert await _on_queue(ctx, "finalize") == [waiting, lost]

    await ctx.redis.delete(f"{ctx.keys.prefix}finalize")
    await sweep.sweep(ctx)
    assert sorted(await _on_queue(ctx, "finalize")) == sorted([waiting, behind])
