"""Steps shared by the job engine's tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError

from shared import logs
from shared.models import Job
from shared.settings import Settings
from shared.timeutil import utcnow
from worker.context import Context

log = logging.getLogger("worker.engine")

# Redis (events, leases) or the broker is away. What they carry is advisory or rebuilt from Postgres, so a
# step that already changed its row goes on without them.
REDIS_DOWN = (RedisError, BrokerUnavailable, OSError)


class RetryLater(Exception):
    """A finalize step failed in a way worth another try: the task retries after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f}s")
        self.delay = delay


async def _best_effort(what: str, job_id: str, step: Awaitable[object]) -> None:
    try:
        await step
    except REDIS_DOWN as exc:
        log.warning("job %s: %s skipped (%s)", job_id, what, type(exc).__name__)


async def publish(ctx: Context, job: Job | None, message: str = "") -> None:
    """Tells followers about the new version. Lost when Redis is away; followers read Postgres again."""
    if job is not None:
        await _best_effort("event", job.id, ctx.publisher.publish(job, message))


async def free_slot(ctx: Context, job: Job, *, refill: bool = True) -> None:
    """The job no longer occupies upstream capacity: give its slot to the next parked job.

    ``refill=False`` only gives the slot back, for a caller that sends the parked jobs of many freed slots
    in one ``dispatch``. Without Redis the lease runs out by itself and beat's dispatch sends the parked job.
    """
    if job.account_id is not None:
        await _best_effort("slot release", job.id, ctx.pool.leases.release(job.account_id, job.kind, job.id))
    if refill:
        await _best_effort("dispatch", job.id, dispatch(ctx, job.kind, 1))


async def dispatch(ctx: Context, kind: str, limit: int) -> int:
    ids = await ctx.jobs.take_parked(kind, limit)
    await ctx.submit_messages.send(ctx.redis, ids)
    return len(ids)


def wake_dependent(ctx: Context, job: Job) -> None:
    """The job that waits for this one (a chained character or video) may go on, or fail with it.

    Without a broker the sweeper sends the waiting job later.
    """
    waiting = job.params.get("then_job")
    if waiting:
        try:
            ctx.enqueue.submit(waiting)
        except REDIS_DOWN as exc:
            log.warning("job %s: waking %s skipped (%s)", job.id, waiting, type(exc).__name__)


def step_silence(settings: Settings) -> timedelta:
    """How long a submit may go without a heartbeat before it counts as dead (a little slack for clocks)."""
    return timedelta(seconds=3 * settings.step_heartbeat_s + 2)


@contextlib.asynccontextmanager
async def heartbeat(ctx: Context, job: Job, column: str | None = None) -> AsyncIterator[None]:
    """Marks the job alive (``updated_at``, and ``column`` when given) every ``STEP_HEARTBEAT_S`` while the
    step runs, so the sweeper does not take over work that is only slow."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ctx.settings.step_heartbeat_s)
            values = {column: utcnow()} if column else {}
            try:
                await ctx.jobs.transition(job.id, [job.state], bump=False, **values)
            except Exception as exc:  # the database is away: the step itself will meet that too
                log.warning("job %s: heartbeat failed (%s)", job.id, type(exc).__name__)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@logs.for_job
async def fail(ctx: Context, job: Job, code: str, message: str, attempt: dict | None = None) -> Job | None:
    failed = await ctx.jobs.fail(job.id, code, message, attempt=attempt)
    if failed is not None:
        log.info("job %s failed: %s (%s)", job.id, message, code)
        await publish(ctx, failed, message)
        if failed.account_id is not None:
            await free_slot(ctx, failed)
        wake_dependent(ctx, failed)
    return failed
