"""Progress collection: one short tick per account, never one loop per job.

``poll.tick`` (beat) sends ``poll.accounts`` messages, each for up to ``ACCOUNTS_PER_POLL`` accounts with
running jobs. The task polls its accounts concurrently: one ``pending`` request covers all of an account's
tasks, and the drafts are read only when a task has left the pending list. What every poll of a batch
needs from Postgres and Redis is read and written for the whole batch at once: the running jobs, the
accounts, the lease renewals, the progress updates and their events. The finished videos it finds are then
downloaded by the same task as soon as each is found (``finalize.start``), and the accounts with a task
that left pending before its draft was listed get their drafts read again soon (``poll.drafts``, on the
finalize queue, ahead of the polls). An account whose tasks are all still queued upstream has nothing to show
before they run: its guard stays, and it is polled again on the last or the one before the last of its next
``POLL_QUEUED_TICKS`` ticks; one whose videos all run far from their end (below ``FINISHING_PROGRESS``), of
its next ``POLL_RUNNING_TICKS``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared import logs
from shared.jobs import attempt_entry
from shared.models import Account, Job, JobState
from shared.secrets import SecretUnreadable
from shared.sora import errors
from shared.sora.client import Credentials
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine import accounts, characters, finalize
from worker.engine.common import REDIS_DOWN, dispatch, fail, free_slot, log, publish

CONTENT_FILTER_MESSAGE = "The prompt or input was rejected by the content filter"
MAX_DRAFT_PAGES = 5
# Accounts per poll task. A batch shares its database reads and writes, so a poll of 1,000 busy accounts
# is 50 tasks, not 1,000; several batches still let every worker process take a share of a tick.
ACCOUNTS_PER_POLL = 20
# A task that left pending before its draft was listed (the gap) has its account's drafts read again this
# many times, evenly within the poll interval, instead of waiting a whole interval for the next tick.
GAP_RECHECKS = 2
# What pending calls a task that has not started running yet: no progress to show until it leaves them.
NOT_STARTED = frozenset({"preprocessing", "queued"})
# A running video below this progress is far from leaving pending (``processing`` is 99): while all of an
# account's videos are, it is polled on one tick in ``POLL_RUNNING_TICKS`` only.
FINISHING_PROGRESS = 80


@dataclass
class Found:
    """What a batch's polls found: progress and the gap are acted on for the whole batch once every poll is
    over; the downloads start as soon as each finished job is found, and the task waits for them last."""

    # (job id, progress, upstream status) of the jobs that moved on, applied in one UPDATE.
    progress: list[tuple[str, int, str | None]] = field(default_factory=list)
    # Accounts with a task that has just entered the gap: their drafts are read again soon.
    gap: set[int] = field(default_factory=set)
    # Downloads of the jobs moved to finalizing, started at once in this task.
    finishing: list[asyncio.Task[None]] = field(default_factory=list)
    # The slots those jobs gave back, by kind: parked jobs are sent for all of them in one dispatch.
    freed: Counter[str] = field(default_factory=Counter)

    async def finish(self, ctx: Context, job: Job) -> None:
        await free_slot(ctx, job, refill=False)
        self.freed[job.kind] += 1
        self.finishing.append(finalize.start(ctx, job))

    async def settle(self, ctx: Context) -> None:
        """Sends parked jobs for the freed slots, then waits for the downloads (each one sends its job to the
        finalize queue when it fails). Without Redis or Postgres here, beat's dispatch sends them."""
        for kind, count in self.freed.items():
            try:
                await dispatch(ctx, kind, count)
            except Exception as exc:
                log.warning("dispatch of %d %s slots skipped (%s)", count, kind, type(exc).__name__)
        for outcome in await asyncio.gather(*self.finishing, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("a finalize started by a poll failed", exc_info=outcome)


async def tick(ctx: Context) -> int:
    """Sends a poll for every account that has running jobs, unless one is already on its way.

    Two round trips whatever the number of accounts: the guards in one pipeline, the poll messages in
    another. Returns the number of accounts to be polled.
    """
    guard_ttl = max(int(ctx.settings.poll_interval_s * 5), 10)
    accounts = await ctx.jobs.accounts_with_running_jobs()
    if not accounts:
        return 0
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for account_id in accounts:
            pipe.set(ctx.keys.poll_guard(account_id), 1, nx=True, ex=guard_ttl)
        taken = await pipe.execute()
    # A guard whose message is not sent (Redis went away) lapses after guard_ttl; the next tick sends it.
    due = [account_id for account_id, ok in zip(accounts, taken, strict=True) if ok]
    batches = [due[i : i + ACCOUNTS_PER_POLL] for i in range(0, len(due), ACCOUNTS_PER_POLL)]
    await ctx.poll_messages.send(ctx.redis, batches)
    return len(due)


async def poll_accounts(ctx: Context, account_ids: list[int]) -> None:
    """Polls each account once, all at the same time.

    Each account lets go of its guard as soon as its own poll is over, so an account whose requests hang
    (up to ``UPSTREAM_TIMEOUT_S``) holds back neither the others' next polls nor their completions; a
    failure in one account's poll is logged and leaves the others alone.
    """
    polled: list[int] = []
    seen = Found()
    try:
        jobs = await ctx.jobs.running_on(account_ids)
        by_account: dict[int, list[Job]] = defaultdict(list)
        held: dict[tuple[int, str], list[str]] = defaultdict(list)
        for job in jobs:
            by_account[job.account_id].append(job)  # type: ignore[index]
            held[(job.account_id, job.kind)].append(job.id)  # type: ignore[index]
        await ctx.pool.leases.renew_many(held)
        found = await ctx.pool.get_many(list(by_account))
        polled = [account_id for account_id in by_account if account_id in found]
        outcomes = await asyncio.gather(
            *(_poll_account(ctx, found[account_id], by_account[account_id], seen) for account_id in polled),
            return_exceptions=True,
        )
        for account_id, outcome in zip(polled, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("poll of account %s failed", account_id, exc_info=outcome)
        changed = await ctx.jobs.raise_progress_many(seen.progress)
        try:
            await ctx.publisher.publish_many(changed)
        except REDIS_DOWN as exc:  # followers read Postgres again
            log.warning("progress events of %d jobs skipped (%s)", len(changed), type(exc).__name__)
        _recheck_soon(ctx, seen.gap, GAP_RECHECKS)
    finally:
        await seen.settle(ctx)
        idle = set(account_ids).difference(polled)  # nothing to poll, or never got that far
        if idle:
            await ctx.redis.delete(*(ctx.keys.poll_guard(account_id) for account_id in idle))


async def poll_account(ctx: Context, account_id: int) -> None:
    """One account alone (``poll.account`` messages from before ``poll.accounts``)."""
    await poll_accounts(ctx, [account_id])


async def recheck_drafts(ctx: Context, account_ids: list[int] | int, left: int) -> None:
    """Reads the drafts of the accounts of a poll that saw a task leave pending before its draft was listed.

    Sent by that poll, ``GAP_RECHECKS`` times at most, a fraction of the poll interval apart: a draft that
    shows up a second after its task left pending is downloaded then, not a whole interval later. One
    message for all of a poll's accounts, read at the same time. Only drafts: pending is the tick's. A task
    still in the gap after the last recheck is left to the ticks and their grace period. (A single account
    id is a message from before the accounts were sent together.)
    """
    ids = [account_ids] if isinstance(account_ids, int) else account_ids
    by_account: dict[int, list[Job]] = defaultdict(list)
    for job in await ctx.jobs.running_on(ids):
        if job.kind == "video" and job.missing_since is not None:
            by_account[job.account_id].append(job)  # type: ignore[index]
    found = await ctx.pool.get_many(list(by_account)) if by_account else {}
    checked = [account_id for account_id in by_account if account_id in found]
    seen = Found()
    try:
        outcomes = await asyncio.gather(
            *(_recheck_one(ctx, found[account_id], by_account[account_id], seen) for account_id in checked),
            return_exceptions=True,
        )
        waiting = set()
        for account_id, outcome in zip(checked, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("drafts recheck of account %s failed", account_id, exc_info=outcome)
            elif outcome:
                waiting.add(account_id)
        _recheck_soon(ctx, waiting, left)
    finally:
        await seen.settle(ctx)


async def _recheck_one(ctx: Context, account: Account, jobs: list[Job], seen: Found) -> bool:
    """True while one of the account's tasks still waits for its draft."""
    try:
        creds = ctx.pool.credentials(account)
    except SecretUnreadable:
        return False  # the tick's poll disables the account
    with logs.bind(account_id=account.id):
        drafts = await _drafts_for(ctx, creds, jobs)
        waiting = [
            job
            for job in jobs
            if await _on_left_pending(ctx, job, drafts.get(job.upstream_task_id or ""), seen)
        ]
    return bool(waiting)


def _recheck_soon(ctx: Context, account_ids: set[int], left: int) -> None:
    """Sends the next of ``left`` rechecks for these accounts in one message; it says how many may follow."""
    if left <= 0 or not account_ids:
        return
    delay = ctx.settings.poll_interval_s / (GAP_RECHECKS + 1)
    try:
        ctx.enqueue.recheck_drafts(sorted(account_ids), left - 1, countdown=delay)
    except REDIS_DOWN as exc:  # the next tick looks anyway
        log.warning("drafts recheck of %d accounts skipped (%s)", len(account_ids), type(exc).__name__)


async def _poll_account(ctx: Context, account: Account, jobs: list[Job], seen: Found) -> None:
    ticks = 1
    try:
        with logs.bind(account_id=account.id):
            ticks = await _poll_one(ctx, account, jobs, seen)
    finally:
        guard = ctx.keys.poll_guard(account.id)  # type: ignore[arg-type]
        if ticks > 1:
            # Its guard stays until shortly before the tick that is due to poll it again: one of the last two,
            # at random, so that accounts whose tasks were created together do not stay polled together.
            hold = (ticks - 1.5 + random.random()) * ctx.settings.poll_interval_s
            await ctx.redis.set(guard, 1, px=int(hold * 1000))
        else:
            await ctx.redis.delete(guard)


async def _poll_one(ctx: Context, account: Account, jobs: list[Job], seen: Found) -> int:
    """Polls the account's jobs of every kind; returns on which tick to poll it again (1: the next one), more
    than 1 only when it has only videos and none can finish soon."""
    try:
        creds = ctx.pool.credentials(account)
    except SecretUnreadable as exc:
        log.error("account %s: %s; disabling it", account.id, exc)
        await ctx.pool.update(account.id, enabled=False, disabled_reason="secret_unreadable")  # type: ignore[arg-type]
        return 1
    by_kind: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_kind[job.kind].append(job)
    ticks = 1
    if by_kind.get("video"):
        ticks = await _poll_videos(ctx, creds, by_kind["video"], seen)
    if by_kind.get("image"):
        await _poll_images(ctx, creds, by_kind["image"], seen)
    if by_kind.get("character"):
        await characters.poll_cameos(ctx, creds, by_kind["character"])
    return ticks if len(by_kind) == 1 else 1


def _ticks_until_due(ctx: Context, task: dict[str, Any]) -> int:
    """On which tick a task still in pending is worth polling again: later while it has not started running
    (``POLL_QUEUED_TICKS``) or is running far from its end (``POLL_RUNNING_TICKS``), else the next one."""
    status = task.get("status")
    if status in NOT_STARTED:
        return ctx.settings.poll_queued_ticks
    if status == "running" and _percent(task) < FINISHING_PROGRESS:
        return ctx.settings.poll_running_ticks
    return 1


async def _poll_videos(ctx: Context, creds: Credentials, jobs: list[Job], seen: Found) -> int:
    """Returns on which tick to poll the account again: the soonest any of its tasks is due
    (``_ticks_until_due``); the next one when a task has left pending or the poll failed."""
    try:
        pending = {item.get("id"): item for item in await ctx.sora.pending(creds)}
    except errors.UpstreamError as exc:
        # The next tick tries again; the deadline bounds how long that can go on.
        log.warning("pending poll for account %s failed: %s", creds.account_id, exc.error_class)
        await accounts.on_poll_error(ctx, creds.account_id, exc)
        return 1

    gone: list[Job] = []
    ticks = max(ctx.settings.poll_queued_ticks, ctx.settings.poll_running_ticks)
    for job in jobs:
        task = pending.get(job.upstream_task_id)
        if task is None:
            gone.append(job)
        else:
            ticks = min(ticks, _ticks_until_due(ctx, task))
            await _on_pending(ctx, job, task, seen)
    if gone:
        drafts = await _drafts_for(ctx, creds, gone)
        for job in gone:
            waits = await _on_left_pending(ctx, job, drafts.get(job.upstream_task_id or ""), seen)
            if waits and job.missing_since is None:
                seen.gap.add(creds.account_id)
    return 1 if gone else ticks


async def _poll_images(ctx: Context, creds: Credentials, jobs: list[Job], seen: Found) -> None:
    """One recent_tasks request covers every image job of the account."""
    try:
        tasks = {task.get("id"): task for task in await ctx.sora.recent_image_tasks(creds, limit=50)}
    except errors.UpstreamError as exc:
        log.warning("recent_tasks poll for account %s failed: %s", creds.account_id, exc.error_class)
        await accounts.on_poll_error(ctx, creds.account_id, exc)
        return
    for job in jobs:
        task = tasks.get(job.upstream_task_id)
        status = str((task or {}).get("status") or "")
        urls = [
            g.get("url")
            for g in (task or {}).get("generations") or []
            if isinstance(g, dict) and g.get("url")
        ]
        if (
            task is None
            or status in ("queued", "running", "processing")
            or (status == "succeeded" and not urls)
        ):
            if task is None:
                await _in_gap(ctx, job)
            else:
                seen.progress.append((job.id, _percent(task), status))
        elif status == "succeeded":
            finalizing = await ctx.jobs.transition(
                job.id,
                [JobState.RUNNING],
                state=JobState.FINALIZING,
                media_url=urls[0],
                generation_id=((task.get("generations") or [{}])[0] or {}).get("id"),
                upstream_status=status,
                progress=99,
                missing_since=None,
            )
            if finalizing is not None:
                await publish(ctx, finalizing, "Downloading the image")
                await seen.finish(ctx, finalizing)
        else:
            reason = str(task.get("failure_reason") or task.get("error_message") or "Generation failed")
            if "polic" in reason.lower() or "guideline" in reason.lower():
                await _fail_outcome(ctx, job, errors.ContentPolicy(reason))
            else:
                await _fail_outcome(ctx, job, errors.UpstreamTaskFailed(reason), "image")


def _percent(task: dict[str, Any]) -> int:
    pct = task.get("progress_pct")
    value = int(float(pct) * 100) if isinstance(pct, int | float) else 0
    # In progress is 1 to 99 on our side; 100 belongs to a finished, downloaded video.
    return min(max(value, 1), 99)


async def _fail_outcome(ctx: Context, job: Job, exc: errors.UpstreamError, what: str = "video") -> None:
    """A generation that ended badly upstream: terminal at once, no retry, and not the account's fault (its
    counts stay as they were). The attempt records the account and the class; a failure reason is shown
    as upstream gave it unless it holds a phrase that would make a channel be disabled."""
    if isinstance(exc, errors.ContentPolicy):
        message = CONTENT_FILTER_MESSAGE
    else:
        reason = errors.public_reason(exc.message, "no reason given")
        message = f"The upstream could not generate the {what}: {reason}"
    await fail(
        ctx, job, exc.public_code, message, attempt_entry(job.account_id, exc.error_class, exc.message)
    )


@logs.for_job
async def _on_pending(ctx: Context, job: Job, task: dict[str, Any], seen: Found) -> None:
    status = str(task.get("status") or "")
    if status in ("failed", "error"):
        reason = task.get("failure_reason") or task.get("error_message") or "Generation failed"
        await _fail_outcome(ctx, job, errors.UpstreamTaskFailed(str(reason)))
        return
    seen.progress.append((job.id, _percent(task), status))


async def _drafts_for(ctx: Context, creds: Credentials, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Drafts by task id; follows the cursor only while older tasks may be further down the list."""
    wanted = {job.upstream_task_id for job in jobs}
    oldest = min((job.submitted_at or job.created_at) for job in jobs).timestamp()
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(MAX_DRAFT_PAGES):
        try:
            page = await ctx.sora.drafts(creds, cursor=cursor)
        except errors.UpstreamError as exc:
            log.warning("drafts for account %s failed: %s", creds.account_id, exc.error_class)
            break
        items = [item for item in page.get("items") or [] if isinstance(item, dict)]
        for item in items:
            if item.get("task_id") in wanted:
                found[item["task_id"]] = item
        cursor = page.get("cursor")
        last_created = items[-1].get("created_at") if items else None
        if (
            len(found) == len(wanted)
            or not cursor
            or not isinstance(last_created, int | float)
            or last_created < oldest
        ):
            break
    return found


def _is_violation(draft: dict[str, Any]) -> bool:
    return draft.get("kind") == "sora_content_violation" or bool(
        draft.get("reason_str") or draft.get("markdown_reason_str")
    )


@logs.for_job
async def _on_left_pending(ctx: Context, job: Job, draft: dict[str, Any] | None, seen: Found) -> bool:
    """Acts on a task that has left pending; True while it waits for its draft (or the draft's link)."""
    if draft is not None and _is_violation(draft):
        reason = draft.get("reason_str") or draft.get("markdown_reason_str") or "content violation"
        await _fail_outcome(ctx, job, errors.ContentPolicy(str(reason)))
        return False
    media_url = (draft or {}).get("downloadable_url") or (draft or {}).get("url")
    if draft is None or not media_url:
        return await _in_gap(ctx, job)
    thumbnail = ((draft.get("encodings") or {}).get("thumbnail") or {}).get("path")
    finalizing = await ctx.jobs.transition(
        job.id,
        [JobState.RUNNING],
        state=JobState.FINALIZING,
        generation_id=draft.get("id"),
        media_url=media_url,
        thumbnail_url=thumbnail,
        upstream_status="draft",
        progress=99,
        missing_since=None,
    )
    if finalizing is not None:
        await publish(ctx, finalizing, "Downloading the video")
        await seen.finish(ctx, finalizing)
    return False


@logs.for_job
async def _in_gap(ctx: Context, job: Job) -> bool:
    """In neither list (just finished, draft not listed yet, or lost): wait within a grace period.

    True while it waits, False once the grace period is over and the job has failed."""
    now = utcnow()
    if job.missing_since is None:
        await ctx.jobs.transition(
            job.id, [JobState.RUNNING], where=[Job.missing_since.is_(None)], bump=False, missing_since=now
        )
    elif now - job.missing_since > timedelta(seconds=ctx.settings.draft_grace_s):
        await fail(ctx, job, "upstream_lost", "The upstream lost track of the generation")
        return False
    return True
