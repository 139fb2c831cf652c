"""Steps shared by the job engine's tasks."""

from __future__ import annotations

import logging

from shared.models import Job
from worker.context import Context

log = logging.getLogger("worker.engine")


class RetryLater(Exception):
    """A finalize step failed in a way worth another try: the task retries after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f}s")
        self.delay = delay


async def publish(ctx: Context, job: Job | None, message: str = "") -> None:
    if job is not None:
        await ctx.publisher.publish(job, message)


async def free_slot(ctx: Context, job: Job) -> None:
    """The job no longer occupies upstream capacity: give its slot to the next parked job."""
    if job.account_id is not None:
        await ctx.pool.leases.release(job.account_id, job.kind, job.id)
    await dispatch(ctx, job.kind, 1)


async def dispatch(ctx: Context, kind: str, limit: int) -> int:
    ids = await ctx.jobs.take_parked(kind, limit)
    for job_id in ids:
        ctx.enqueue.submit(job_id)
    return len(ids)


def wake_dependent(ctx: Context, job: Job) -> None:
    """The job that waits for this one (a chained character or video) may go on, or fail with it."""
    waiting = job.params.get("then_job")
    if waiting:
        ctx.enqueue.submit(waiting)


async def fail(ctx: Context, job: Job, code: str, message: str, attempt: dict | None = None) -> Job | None:
    failed = await ctx.jobs.fail(job.id, code, message, attempt=attempt)
    if failed is not None:
        log.info("job %s failed: %s (%s)", job.id, message, code)
        await publish(ctx, failed, message)
        if failed.account_id is not None:
            await free_slot(ctx, failed)
        wake_dependent(ctx, failed)
    return failed
