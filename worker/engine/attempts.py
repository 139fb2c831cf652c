"""What a job does after a failed upstream call: try again, move to another account, or fail.

Shared by every kind's submit (videos, images, characters), so retries are bounded and recorded the
same way for all of them.
"""

from __future__ import annotations

import random

from shared.jobs import attempt_entry
from shared.models import Account, Job, JobState
from shared.sora import errors
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine import accounts
from worker.engine.common import fail, log, publish


class InputUnavailable(Exception):
    """The job's own input (reference image, remix source) is unusable: terminal, not the account's fault."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def avoided_account(job: Job) -> set[int]:
    """The account the last attempt failed on, when the failure was the account's: retries go elsewhere."""
    last = job.attempts[-1] if job.attempts else {}
    return {last["account_id"]} if last.get("avoid") and last.get("account_id") is not None else set()


async def on_upstream_error(ctx: Context, job: Job, account: Account, exc: errors.UpstreamError) -> None:
    log.warning("job %s: create on account %s failed: %s", job.id, account.id, exc.error_class)
    after = await accounts.react(ctx, account, exc)
    if after is accounts.Next.FAIL:
        await fail(
            ctx,
            job,
            exc.public_code,
            exc.public_message,
            attempt_entry(account.id, exc.error_class, str(exc)),
        )
    elif after is accounts.Next.RETRY_SAME:
        await retry_or_fail(ctx, job, account, exc.error_class, exc.public_message, avoid=False, delay=0.0)
    elif after is accounts.Next.RETRY:
        await retry_or_fail(
            ctx, job, account, exc.error_class, exc.public_message, avoid=False, delay=exc.wait
        )
    else:
        # The account is cooled down, disabled or skipped: the job moves on to another one right away.
        await retry_or_fail(ctx, job, account, exc.error_class, exc.public_message, avoid=True, delay=1.0)


async def retry_or_fail(
    ctx: Context,
    job: Job,
    account: Account,
    error_class: str,
    message: str,
    *,
    avoid: bool,
    delay: float | None = None,
) -> None:
    attempt = {**attempt_entry(account.id, error_class, message), "avoid": avoid}
    if len(job.attempts) + 1 >= ctx.settings.max_submit_attempts:
        await fail(ctx, job, error_class, f"The upstream did not accept the job: {message}", attempt)
        return
    requeued = await ctx.jobs.transition(
        job.id,
        [JobState.SUBMITTING],
        state=JobState.QUEUED,
        account_id=None,
        enqueued_at=utcnow(),
        attempt=attempt,
    )
    await ctx.pool.leases.release(account.id, job.kind, job.id)  # type: ignore[arg-type]
    if requeued is not None:
        await publish(ctx, requeued, "Retrying on another attempt")
        backoff = (
            min(delay, 60.0)
            if delay is not None
            else min(2 ** len(job.attempts), 30) * (0.5 + random.random())
        )
        ctx.enqueue.submit(job.id, countdown=backoff)
