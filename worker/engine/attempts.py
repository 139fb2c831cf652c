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


def preferred_account(job: Job) -> int | None:
    """The account the next attempt should use if it can: the one whose token was just refreshed, or the
    one a create may have reached although its answer was lost (``reconcile``)."""
    last = job.attempts[-1] if job.attempts else {}
    return last.get("account_id") if last.get("same") else None


def reconcile_account(job: Job) -> int | None:
    """The account whose pending list must be read for this job's task before another create is sent."""
    last = job.attempts[-1] if job.attempts else {}
    return last.get("account_id") if last.get("reconcile") else None


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before attempt number ``attempt + 1``: upstream's retry-after when given, else exponential
    from ``base`` with jitter (x0.5 to x1.5); never more than ``cap``."""
    if retry_after is not None:
        return max(0.0, min(retry_after, cap))
    return min(base * 2 ** max(attempt - 1, 0) * random.uniform(0.5, 1.5), cap)


async def on_upstream_error(
    ctx: Context, job: Job, account: Account, exc: errors.UpstreamError, *, reconcile: bool = False
) -> None:
    """Applies the error's reaction (``accounts.react``) and queues the job's next attempt, or fails it.

    ``reconcile``: a create on this account may have happened (its pending list could not be read), so
    the next attempt here looks for the task first whatever this error was.
    """
    log.warning("job %s: create on account %s failed: %s", job.id, account.id, exc.error_class)
    refreshed_before = any(a.get("refreshed") and a.get("account_id") == account.id for a in job.attempts)
    after = await accounts.react(ctx, account, exc, may_refresh=not refreshed_before)
    cap = ctx.settings.retry_backoff_max_s
    if after is accounts.Next.FAIL:
        await fail(
            ctx,
            job,
            exc.public_code,
            exc.public_message,
            attempt_entry(account.id, exc.error_class, str(exc)),
        )
    elif after is accounts.Next.RETRY_SAME:
        await retry_or_fail(
            ctx,
            job,
            account,
            exc.error_class,
            exc.public_message,
            code=exc.public_code,
            avoid=False,
            delay=0.0,
            same=True,
            reconcile=reconcile,
            refreshed=True,
        )
    elif after is accounts.Next.RETRY:
        delay = backoff(len(job.attempts) + 1, exc.default_wait or 2.0, cap, exc.retry_after)
        if exc.maybe_processed and isinstance(exc, errors.UpstreamTimeout):
            # The upstream may still be working on that create: give it as long again before looking.
            delay = max(delay, ctx.settings.create_timeout_s)
        await retry_or_fail(
            ctx,
            job,
            account,
            exc.error_class,
            exc.public_message,
            code=exc.public_code,
            avoid=False,
            delay=delay,
            same=exc.maybe_processed or reconcile,
            reconcile=exc.maybe_processed or reconcile,
        )
    elif await _no_account_left(ctx, job, account):
        message = f"No upstream account is left to take the job (the last one failed with {exc.error_class})."
        await fail(ctx, job, exc.public_code, message, attempt_entry(account.id, exc.error_class, str(exc)))
    else:
        # The account is cooled down, disabled or skipped: the job moves on to another one right away.
        await retry_or_fail(
            ctx,
            job,
            account,
            exc.error_class,
            exc.public_message,
            code=exc.public_code,
            avoid=True,
            delay=min(1.0, cap),
        )


async def _no_account_left(ctx: Context, job: Job, account: Account) -> bool:
    """The account left the pool (disabled) and no other could ever take the job: waiting is pointless."""
    assert account.id is not None
    current = await ctx.pool.get(account.id)
    if current is not None and current.enabled:
        return False  # cooling down at most: the job can wait for it
    sticky = job.params.get("sticky_account_id")
    if sticky is not None:
        return sticky == account.id
    requires_pro = bool(job.params.get("requires_pro"))
    return not await ctx.pool.any_capable(job.kind, requires_pro=requires_pro)


async def retry_or_fail(
    ctx: Context,
    job: Job,
    account: Account,
    error_class: str,
    message: str,
    *,
    avoid: bool,
    delay: float | None = None,
    code: str | None = None,
    same: bool = False,
    reconcile: bool = False,
    refreshed: bool = False,
) -> None:
    """Records the attempt, then queues the job again, or fails it once MAX_SUBMIT_ATTEMPTS are spent.

    ``avoid``: the next attempt goes to another account if there is one; ``same``: to this account if it
    can; ``reconcile``: this account's pending list is read for the job's task before another create.
    """
    attempt: dict = {**attempt_entry(account.id, error_class, message), "avoid": avoid}
    attempt.update(
        {k: True for k, v in (("same", same), ("reconcile", reconcile), ("refreshed", refreshed)) if v}
    )
    tries = len(job.attempts) + 1
    if tries >= ctx.settings.max_submit_attempts:
        await fail(
            ctx,
            job,
            code or error_class,
            f"The upstream did not accept the job after {tries} attempts: {message}",
            attempt,
        )
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
        if delay is None:
            delay = backoff(tries, 1.0, ctx.settings.retry_backoff_max_s)
        ctx.enqueue.submit(job.id, countdown=delay)
