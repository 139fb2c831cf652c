"""Housekeeping run by beat: nothing stays stuck, every job ends before its deadline."""

from __future__ import annotations

from datetime import timedelta

from shared.models import Job, JobState
from worker.context import Context
from worker.engine.common import dispatch, fail, log

JOB_KINDS = ("video", "image", "character")


async def dispatch_parked(ctx: Context) -> int:
    """Sends parked jobs of every kind when the pool has room (new accounts, ended cooldowns, freed slots)."""
    sent = 0
    for kind in JOB_KINDS:
        free = await ctx.pool.capacity(kind) - await ctx.jobs.count_active(kind)
        sent += await dispatch(ctx, kind, free)
    return sent


async def sweep(ctx: Context) -> dict[str, int]:
    counts = {"overdue": 0, "requeued": 0, "resumed": 0, "refinalized": 0}
    for job in await ctx.jobs.overdue():
        if await fail(ctx, job, "deadline_exceeded", "The job did not finish before its deadline"):
            counts["overdue"] += 1

    # A submit message lost with a broker restart or a dead worker: send it again.
    requeue = timedelta(seconds=ctx.settings.requeue_after_s)
    lost = await ctx.jobs.stale(JobState.QUEUED, Job.enqueued_at, requeue)
    await ctx.jobs.touch_enqueued(lost)
    for job_id in lost:
        ctx.enqueue.submit(job_id)
    counts["requeued"] = len(lost)

    # A worker died inside submit: the next submit resumes it (it looks for the task before creating).
    stuck = await ctx.jobs.stale(
        JobState.SUBMITTING, Job.submit_started_at, timedelta(seconds=ctx.settings.create_timeout_s + 15)
    )
    for job_id in stuck:
        ctx.enqueue.submit(job_id)
    counts["resumed"] = len(stuck)

    for job_id in await ctx.jobs.stale(JobState.FINALIZING, Job.updated_at, requeue):
        ctx.enqueue.finalize(job_id)
        counts["refinalized"] += 1
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts
