"""Housekeeping run by beat: nothing stays stuck, every job ends before its deadline."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa

from shared.models import Job, JobState
from shared.queue import TaskMessages
from worker.context import Context
from worker.engine.common import dispatch, fail, log, step_silence

JOB_KINDS = ("video", "image", "character")


async def dispatch_parked(ctx: Context) -> int:
    """Sends parked jobs of every kind when the pool has room (new accounts, ended cooldowns, freed slots).

    Jobs already sent count against the room: otherwise each tick sent again as many as the previous one,
    while those still waited on the queue, and the extra ones only parked again.
    """
    sent = 0
    for kind in JOB_KINDS:
        free = await ctx.pool.capacity(kind) - await ctx.jobs.count_claiming(kind)
        sent += await dispatch(ctx, kind, free)
    return sent


async def sweep(ctx: Context) -> dict[str, int]:
    counts = {"overdue": 0, "requeued": 0, "resumed": 0, "refinalized": 0}
    # The watchdog: a job past its deadline fails (deadline_exceeded) and gives its slot back.
    for job in await ctx.jobs.overdue():
        if await fail(ctx, job, "deadline_exceeded", "The job did not finish before its deadline"):
            counts["overdue"] += 1

    # A submit message lost with a broker restart or a dead worker: send it again.
    requeue = timedelta(seconds=ctx.settings.requeue_after_s)
    lost = await lost_messages(ctx, ctx.submit_messages, JobState.QUEUED, Job.enqueued_at, requeue)
    await ctx.jobs.touch_enqueued(lost)
    await ctx.submit_messages.send(ctx.redis, lost)
    counts["requeued"] = len(lost)

    # A worker died inside submit (its heartbeat stopped): the next submit resumes it, looking for the task
    # its create may have made before it sends another.
    stuck = await ctx.jobs.stale(JobState.SUBMITTING, Job.submit_started_at, step_silence(ctx.settings))
    await ctx.submit_messages.send(ctx.redis, stuck)
    counts["resumed"] = len(stuck)

    # A finalize whose message or worker was lost. Marked fresh when sent, so one goes out per period.
    refinalize = await lost_messages(ctx, ctx.finalize_messages, JobState.FINALIZING, Job.updated_at, requeue)
    marked = [
        job_id
        for job_id in refinalize
        if await ctx.jobs.transition(job_id, [JobState.FINALIZING], bump=False)
    ]
    await ctx.finalize_messages.send(ctx.redis, marked)
    counts["refinalized"] = len(marked)

    counts["leases"] = await rebuild_leases(ctx)
    if any(value for key, value in counts.items() if key != "leases"):
        log.info("sweep: %s", counts)
    return counts


async def lost_messages(
    ctx: Context,
    messages: TaskMessages,
    state: str,
    column: sa.ColumnElement[datetime],
    older_than: timedelta,
) -> list[str]:
    """Jobs in ``state`` whose message (a submit, a finalize) is gone.

    Waiting a while is not enough to tell: behind a backlog (10,000 jobs accepted at once) a message can
    wait much longer than ``older_than``, and sending it again would only lengthen the queue. Messages leave
    the queue in the order they were sent, so a job sent before the oldest message still waiting has had
    its own message taken, by a task that has yet to move it, or lost.
    """
    front = await messages.oldest_waiting(ctx.redis)
    if front is None:  # nothing waits: whatever is still in ``state`` after ``older_than`` was lost
        return await ctx.jobs.stale(state, column, older_than)
    waiting = await ctx.jobs.get(str(front))
    sent_at = None if waiting is None else getattr(waiting, column.key)
    if sent_at is None:
        return []  # a message that cannot be dated; the next sweep looks again
    return await ctx.jobs.stale(state, column, older_than, before=sent_at)


async def rebuild_leases(ctx: Context) -> int:
    """Re-takes the slot of every job that holds one by Postgres, the truth; a no-op while Redis has them.

    After a Redis restart this is what stops other jobs from taking the slots of submitting, running and
    finalizing (character) jobs. A job that let go of its slot between the read and the renew gets it
    released again; one that took it back meanwhile is left alone (the next sweep repairs a rare miss).
    """
    holders = await ctx.jobs.holding_slots()
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    for job_id, account_id, kind in holders:
        groups[(account_id, kind)].append(job_id)
    await ctx.pool.leases.renew_many(groups)
    for job_id, account_id, kind in holders - await ctx.jobs.holding_slots():
        await ctx.pool.leases.release(account_id, kind, job_id)
    return len(holders)
