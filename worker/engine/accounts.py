"""The account side of the job engine: reacting to upstream errors, quota, and the rolling token refresh.

Every reaction to an upstream error on an account goes through ``react``, so the counts, cooldowns and
disables an operator sees in ``GET /api/tokens`` follow one set of rules.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from shared import refresh
from shared.accounts import quota_fields
from shared.models import Account
from shared.secrets import SecretUnreadable
from shared.sora import errors
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine.common import log

QUOTA_REASON = "quota"
# A finished video reads nf/check only when the known allowance is this low (or unknown): above it the
# account has room for more videos than it can run at once.
QUOTA_READ_AT = 5


class Next(enum.Enum):
    """What the job should do after an error on its account."""

    RETRY_SAME = "retry_same"  # the account was repaired (fresh token): try it again now
    RETRY = "retry"  # back off; the same account if the create may have happened, else any
    ROTATE = "rotate"  # go to another account
    FAIL = "fail"  # terminal for the job


async def react(
    ctx: Context, account: Account, exc: errors.UpstreamError, *, may_refresh: bool = True
) -> Next:
    """Applies the error's consequence to the account and says what the job should do next.

    ``may_refresh`` is False when this job already refreshed this account's token once: a token refused
    again right after a refresh disables the account instead of refreshing in a loop.
    """
    assert account.id is not None
    values: dict[str, Any] = {}
    if exc.refresh_first and may_refresh and (account.session_token_enc or account.refresh_token_enc):
        try:
            await refresh.refresh_account(
                ctx.pool, ctx.box, ctx.sora, account, retry_after_s=ctx.settings.refresh_retry_s
            )
        except refresh.RefreshFailed as failed:
            log.warning("account %s: %s, and the refresh failed: %s", account.id, exc.error_class, failed)
            values.update(_after_failed_refresh(ctx, exc, failed))
        else:
            log.info("account %s: %s; refreshed its token, trying again", account.id, exc.error_class)
            await ctx.pool.record_error(
                account.id, exc.error_class, account_fault=False, threshold=ctx.settings.error_ban_threshold
            )
            return Next.RETRY_SAME
    elif exc.reaction is errors.Reaction.DISABLE:
        log.warning("account %s: %s; disabling it", account.id, exc.error_class)
        values.update(enabled=False, disabled_reason=exc.account_reason or exc.error_class)
    elif exc.recheck_quota and await _quota_spent(ctx, account):
        return Next.ROTATE  # _quota_spent cooled the account down until the reset
    elif exc.reaction is errors.Reaction.COOLDOWN:
        values.update(
            cooldown_until=utcnow() + timedelta(seconds=exc.wait or 120),
            cooldown_reason=exc.account_reason or exc.error_class,
        )
    # A full account (too many tasks), a challenge at the edge, a 5xx or a bad request is nobody's error
    # and leaves the account as it was; cooldowns and disables show in the counts.
    counted = exc.account_fault or exc.reaction in (errors.Reaction.COOLDOWN, errors.Reaction.DISABLE)
    if counted or values:
        await ctx.pool.record_error(
            account.id,
            exc.error_class,
            account_fault=exc.account_fault,
            threshold=ctx.settings.error_ban_threshold,
            **values,
        )
    if exc.reaction is errors.Reaction.FAIL:
        return Next.FAIL
    if exc.reaction is errors.Reaction.RETRY:
        return Next.RETRY
    return Next.ROTATE


async def on_poll_error(ctx: Context, account_id: int, exc: errors.UpstreamError) -> None:
    """A poll refused the token: refresh it now so the account's running tasks can still be followed."""
    if not exc.refresh_first:
        return
    account = await ctx.pool.get(account_id)
    if account is None or not (account.session_token_enc or account.refresh_token_enc):
        if account is not None:
            await ctx.pool.update(account_id, enabled=False, disabled_reason=exc.account_reason)
        return
    try:
        await refresh.refresh_account(
            ctx.pool, ctx.box, ctx.sora, account, retry_after_s=ctx.settings.refresh_retry_s
        )
    except refresh.RefreshFailed as failed:
        log.warning("account %s: token refused while polling, refresh failed: %s", account_id, failed)
        await ctx.pool.update(account_id, **_after_failed_refresh(ctx, exc, failed))


def _after_failed_refresh(
    ctx: Context, exc: errors.UpstreamError, failed: refresh.RefreshFailed
) -> dict[str, Any]:
    """Refused credentials disable the account (keeping the cause); unreachable hosts only pause it."""
    if failed.transient:
        return {
            "cooldown_until": utcnow() + timedelta(seconds=ctx.settings.refresh_retry_s),
            "cooldown_reason": "token_refresh",
        }
    return {"enabled": False, "disabled_reason": exc.account_reason or exc.error_class}


async def _quota_spent(ctx: Context, account: Account) -> bool:
    """Reads ``nf/check``; when the video allowance is spent, cools the account down until its reset."""
    assert account.id is not None
    return await check_quota(ctx, account.id, account) is True


async def _apply_quota(ctx: Context, account_id: int, fields: dict[str, Any]) -> bool:
    if not fields:
        return False
    spent = fields.get("quota_remaining") is not None and fields["quota_remaining"] <= 0
    if spent:
        until = fields.get("quota_resets_at") or utcnow() + timedelta(hours=1)
        fields.update(cooldown_until=until, cooldown_reason=QUOTA_REASON)
        log.info("account %s: video allowance spent, cooling down until %s", account_id, until.isoformat())
    await ctx.pool.update(account_id, **fields)
    return spent


def quota_worth_reading(account: Account) -> bool:
    """After a finished video: is the allowance unknown, or close enough to spent to read ``nf/check``?

    Each finished video lowers the known allowance by one, so a reading is needed only near the end of
    it (or while none was ever made); a create the upstream refuses for quota reads it too.
    """
    return account.quota_remaining is None or account.quota_remaining <= QUOTA_READ_AT


async def check_quota(ctx: Context, account_id: int, account: Account | None = None) -> bool | None:
    """The allowance left, and a cooldown until the reset when none is (``account``: as just read).

    True when the allowance is spent, False when some is left, None when it could not be read.
    """
    account = account or await ctx.pool.get(account_id)
    if account is None:
        return None
    try:
        check = await ctx.sora.nf_check(ctx.pool.credentials(account))
    except (errors.UpstreamError, SecretUnreadable) as exc:
        log.info("account %s: quota check failed: %s", account_id, exc)
        return None
    fields = quota_fields(check)
    return await _apply_quota(ctx, account_id, fields) if fields else None


async def maintain(ctx: Context) -> dict[str, int]:
    """Beat: refreshes tokens close to expiry a few at a time, and re-reads quota after a quota cooldown."""
    now = utcnow()
    due = await _claim_due_refreshes(ctx)
    for account_id in due:
        ctx.enqueue.refresh_account(account_id)

    async with ctx.sessions() as session:
        result = await session.execute(
            sa.select(Account.id).where(
                Account.enabled.is_(True),
                Account.cooldown_reason == QUOTA_REASON,
                Account.cooldown_until <= now,
            )
        )
        ended = [row[0] for row in result.all()]
    for account_id in ended:
        if await check_quota(ctx, account_id) is False:
            await ctx.pool.update(account_id, cooldown_until=None, cooldown_reason=None)
    return {"refreshes": len(due), "quota_rechecked": len(ended)}


async def _claim_due_refreshes(ctx: Context) -> list[int]:
    """Accounts whose token expires within the window, earliest first, at most a batch per run.

    Claiming sets ``refresh_not_before``, so a second beat or an overlapping run cannot pick them again.
    """
    now = utcnow()
    window = timedelta(seconds=ctx.settings.refresh_window_s)
    due = (
        sa.select(Account.id)
        .where(
            Account.enabled.is_(True),
            sa.or_(Account.session_token_enc.is_not(None), Account.refresh_token_enc.is_not(None)),
            Account.expires_at.is_not(None),
            Account.expires_at <= now + window,
            sa.or_(Account.refresh_not_before.is_(None), Account.refresh_not_before <= now),
        )
        .order_by(Account.expires_at)
        .limit(ctx.settings.refresh_batch)
        .with_for_update(skip_locked=True)
    )
    async with ctx.sessions() as session:
        result = await session.execute(
            sa.update(Account)
            .where(Account.id.in_(due.scalar_subquery()))
            .values(refresh_not_before=now + timedelta(seconds=ctx.settings.refresh_retry_s))
            .returning(Account.id)
        )
        ids = [row[0] for row in result.all()]
        await session.commit()
    return ids


async def refresh_one(ctx: Context, account_id: int) -> bool:
    account = await ctx.pool.get(account_id)
    if account is None:
        return False
    try:
        await refresh.refresh_account(
            ctx.pool, ctx.box, ctx.sora, account, retry_after_s=ctx.settings.refresh_retry_s
        )
    except refresh.RefreshFailed as exc:
        log.warning("account %s: scheduled refresh failed: %s", account_id, exc)
        return False
    log.info("account %s: token refreshed ahead of its expiry", account_id)
    return True
