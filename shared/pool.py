"""The account pool: which accounts may take a job, and leasing a slot on one."""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import single_statement_sessions
from shared.errors import Conflict, NotFound
from shared.leases import Leases
from shared.models import Account
from shared.secrets import SecretBox
from shared.sora.client import Credentials
from shared.timeutil import utcnow

PRO_PLANS = ("chatgpt_pro",)
# Accounts looked at (and row-locked) per round of a lease.
LEASE_BATCH = 16
# How long a process takes a full pool to be full still while no slot of that kind has been given back.
# Bounds the wait of a job whose slot freed up some other way: a lease that ran out, a new or re-enabled
# account, an ended cooldown, a raised concurrency.
FULL_FOR_S = 2.0
_LIMIT_COLUMN = {
    "video": Account.video_concurrency,
    "image": Account.image_concurrency,
    "character": Account.character_concurrency,
}


def _today(column: str, today: Any = None) -> dict[str, Any]:
    """Adds one to a today_* counter, starting all of them from zero on a new (UTC) day (``today``: a date,
    or a parameter that will hold it; by default the date now)."""
    today = utcnow().date() if today is None else today
    same_day = Account.today_date == today
    values: dict[str, Any] = {"today_date": today}
    for name in ("today_video_count", "today_image_count", "today_error_count"):
        current = getattr(Account, name)
        step = 1 if name == column else 0
        values[name] = sa.case((same_day, current + step), else_=step)
    return values


@functools.cache
def _success_statement(kind: str) -> sa.Update:
    """``Pool.record_success``'s UPDATE for a kind, built once (a statement object keeps its cache key); its
    parameters are ``account_id``, ``now`` and, for videos and images, ``today``."""
    values: dict[str, Any] = {
        "consecutive_errors": 0,
        "updated_at": sa.bindparam("now", type_=sa.DateTime(True)),
    }
    if kind in ("video", "image"):
        total = Account.video_count if kind == "video" else Account.image_count
        values[total.key] = total + 1
        values.update(_today(f"today_{kind}_count", sa.bindparam("today", type_=sa.Date)))
    if kind == "video":  # only videos spend the upstream's video allowance
        values["quota_remaining"] = sa.case(
            (Account.quota_remaining > 0, Account.quota_remaining - 1), else_=Account.quota_remaining
        )
    return (
        sa.update(Account)
        .where(Account.id == sa.bindparam("account_id"))
        .values(**values)
        .returning(Account)
        .execution_options(synchronize_session=False)
    )


def _eligible(kind: str, requires_pro: bool, exclude: Collection[int]) -> list[sa.ColumnElement[bool]]:
    now = utcnow()
    conditions = [
        Account.enabled.is_(True),
        sa.or_(Account.expires_at.is_(None), Account.expires_at > now),
        sa.or_(Account.cooldown_until.is_(None), Account.cooldown_until <= now),
        _LIMIT_COLUMN[kind] > 0,
    ]
    if kind == "video":  # the upstream's allowance counts videos only
        conditions.append(
            sa.or_(
                Account.quota_remaining.is_(None),
                Account.quota_remaining > 0,
                Account.quota_resets_at <= now,
            )
        )
    if requires_pro:
        conditions.append(Account.plan_type.in_(PRO_PLANS))
    if exclude:
        conditions.append(Account.id.not_in(list(exclude)))
    return conditions


class Pool:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], leases: Leases, box: SecretBox) -> None:
        self._sessions = sessions
        # For the methods that run one statement: no BEGIN and COMMIT round trips around it.
        self._one = single_statement_sessions(sessions)
        self.leases = leases
        self._box = box
        # (kind, requires_pro) → until when a yes from any_capable holds (monotonic clock).
        self._capable: dict[tuple[str, bool], float] = {}
        # (kind, requires_pro) → (the freed-slots count, until when) of the last lease that found no room.
        self._full: dict[tuple[str, bool], tuple[int, float]] = {}

    async def lease(
        self,
        kind: str,
        job_id: str,
        *,
        requires_pro: bool = False,
        exclude: Collection[int] = (),
        only: int | None = None,
    ) -> Account | None:
        """Takes a slot on the least busy of the least recently used eligible accounts that have one
        (least recently used among equals), or on ``only``.

        The first ``LEASE_BATCH`` candidates are read with ``FOR UPDATE SKIP LOCKED``, so concurrent submits
        spread over the pool instead of all trying the same least recently used account; ``last_used_at``
        moves before the row lock is released. When none of them can take the job (locked by concurrent
        submits, or full), the least busy of every other eligible account wins, the same way. Both choices
        are one Redis script that counts live slots, so a concurrent submit that just took a slot makes its
        account busier for the next: one that found every row locked and read them all unlocked does not
        pile onto the account the lock holder is taking. A job that must wait (a full pool) costs six round
        trips however large the pool, not four per 16 accounts.

        A lease that found no room anywhere is remembered: until a slot of the kind is given back (or
        ``FULL_FOR_S`` passes), the next ones park at the cost of one Redis read, not a pass over the pool.
        A flood of jobs on a full pool of thousands of accounts would otherwise make every one of them read
        every account. While nothing is remembered, a lease reads nothing more than before.
        """
        plain = not exclude and only is None
        memo = (kind, requires_pro)
        full = self._full.get(memo) if plain else None
        if full is not None and time.monotonic() < full[1] and full[0] == await self.leases.freed(kind):
            return None
        tried: set[int] = set(exclude)
        conditions = _eligible(kind, requires_pro, tried)
        if only is not None:
            conditions.append(Account.id == only)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                sa.select(Account.id, _LIMIT_COLUMN[kind])
                .where(*conditions)
                .order_by(Account.last_used_at.asc().nulls_first(), Account.id)
                .limit(LEASE_BATCH)
                .with_for_update(skip_locked=True)
            )
            candidates = [(row[0], row[1]) for row in result.all()]
            account_id = await self.leases.acquire(kind, job_id, candidates)
            if account_id is not None:
                result = await session.execute(
                    sa.update(Account)
                    .where(Account.id == account_id)
                    .values(last_used_at=utcnow())
                    .returning(Account)
                    .execution_options(synchronize_session=False)
                )
                return result.scalars().one()
        tried.update(candidate for candidate, _ in candidates)
        account = await self._lease_unlocked(kind, job_id, _eligible(kind, requires_pro, tried), only)
        if account is None and plain:
            # Read after the pass: a slot given back during it is missed for FULL_FOR_S at the most.
            self._full[memo] = (await self.leases.freed(kind), time.monotonic() + FULL_FOR_S)
        return account

    async def _lease_unlocked(
        self, kind: str, job_id: str, conditions: list[sa.ColumnElement[bool]], only: int | None
    ) -> Account | None:
        if only is not None:
            conditions.append(Account.id == only)
        async with self._one() as session:
            result = await session.execute(
                sa.select(Account.id, _LIMIT_COLUMN[kind])
                .where(*conditions)
                .order_by(Account.last_used_at.asc().nulls_first(), Account.id)
            )
            candidates = [(row[0], row[1]) for row in result.all()]
        account_id = await self.leases.acquire(kind, job_id, candidates)
        if account_id is None:
            return None
        return await self.store(account_id, last_used_at=utcnow())

    async def any_eligible(
        self, kind: str, *, requires_pro: bool = False, exclude: Collection[int] = ()
    ) -> bool:
        async with self._one() as session:
            result = await session.execute(
                sa.select(sa.func.count()).select_from(Account).where(*_eligible(kind, requires_pro, exclude))
            )
            return int(result.scalar_one()) > 0

    async def any_capable(self, kind: str, *, requires_pro: bool, trust_yes_for: float = 0.0) -> bool:
        """Could any account ever serve this (enabled, plan fits), ignoring passing states like cooldowns?

        ``trust_yes_for``: a yes is remembered this many seconds (a no never is, so an account added to an
        empty pool counts at once). The API passes it: asked on every create, the count was a third of a
        create's cost, and a pool that loses its last capable account meanwhile only queues a few seconds
        more jobs, which wait for an account or their deadline like any other.
        """
        now = time.monotonic()
        if self._capable.get((kind, requires_pro), 0.0) > now:
            return True
        conditions = [Account.enabled.is_(True), _LIMIT_COLUMN[kind] > 0]
        if requires_pro:
            conditions.append(Account.plan_type.in_(PRO_PLANS))
        async with self._one() as session:
            result = await session.execute(sa.select(sa.func.count()).select_from(Account).where(*conditions))
            capable = int(result.scalar_one()) > 0
        if capable and trust_yes_for > 0:
            self._capable[(kind, requires_pro)] = now + trust_yes_for
        return capable

    async def capacity(self, kind: str) -> int:
        """Total slots of the accounts that could take a job now."""
        async with self._one() as session:
            result = await session.execute(
                sa.select(sa.func.coalesce(sa.func.sum(_LIMIT_COLUMN[kind]), 0)).where(
                    *_eligible(kind, False, ())
                )
            )
            return int(result.scalar_one())

    async def get(self, account_id: int) -> Account | None:
        async with self._one() as session:
            return await session.get(Account, account_id)

    async def get_many(self, account_ids: Sequence[int]) -> dict[int, Account]:
        """The accounts that exist among ``account_ids``, by id."""
        if not account_ids:
            return {}
        async with self._one() as session:
            result = await session.execute(sa.select(Account).where(Account.id.in_(account_ids)))
            return {account.id: account for account in result.scalars().all()}  # type: ignore[misc]

    def forget_capable(self) -> None:
        """Drops the remembered yes answers of ``any_capable`` and full pools (the pool changed)."""
        self._capable.clear()
        self._full.clear()

    async def update(self, account_id: int, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        self.forget_capable()
        async with self._one() as session:
            await session.execute(sa.update(Account).where(Account.id == account_id).values(**values))
            await session.commit()

    async def store(self, account_id: int, **values: Any) -> Account | None:
        """Applies ``values`` and returns the account as it is now (None if it is gone)."""
        return await self._apply(
            sa.update(Account)
            .where(Account.id == account_id)
            .values(**values)
            .returning(Account)
            .execution_options(synchronize_session=False)
        )

    async def _apply(self, statement: sa.Update, params: dict[str, Any] | None = None) -> Account | None:
        self.forget_capable()
        async with self._one() as session:
            result = await session.execute(statement, params or {})
            account = result.scalars().one_or_none()
            await session.commit()
            return account

    async def record_success(self, account_id: int, kind: str) -> Account | None:
        """A finished job: counts it (total and today) and clears the consecutive-error count; returns the
        account as it is now (a video lowers its known allowance by one)."""
        now = utcnow()
        params: dict[str, Any] = {"account_id": account_id, "now": now}
        if kind in ("video", "image"):
            params["today"] = now.date()
        return await self._apply(_success_statement(kind), params)

    async def record_error(
        self, account_id: int, error_class: str, *, account_fault: bool, threshold: int, **values: Any
    ) -> Account | None:
        """An upstream error on this account, with the reaction's column values (cooldown, disable).

        Every error counts toward the totals; only the account's own faults count toward the consecutive
        limit, and reaching it disables the account with reason ``error_limit``.
        """
        values.update(
            last_error=error_class,
            last_error_at=utcnow(),
            error_count=Account.error_count + 1,
            updated_at=utcnow(),
            **_today("today_error_count"),
        )
        if account_fault:
            reached = Account.consecutive_errors + 1 >= threshold
            values["consecutive_errors"] = Account.consecutive_errors + 1
            if "enabled" not in values and threshold > 0:
                values["enabled"] = sa.case((reached, sa.false()), else_=Account.enabled)
                values["disabled_reason"] = sa.case(
                    (sa.and_(reached, Account.enabled.is_(True)), "error_limit"),
                    else_=Account.disabled_reason,
                )
        return await self.store(account_id, **values)

    def credentials(self, account: Account) -> Credentials:
        assert account.id is not None
        return Credentials(
            account_id=account.id,
            access_token=self._box.open(account.access_token_enc),
            session_token=self._box.open_optional(account.session_token_enc),
            proxy_url=account.proxy_url,
        )

    async def for_read(self, account_id: int | None = None) -> Account | None:
        """An account for a short upstream read (feed, profiles, search); no slot is taken.

        Without ``account_id``: the least recently used enabled, unexpired account that is not cooling
        down (its ``last_used_at`` moves, so reads go round the pool), or None. With it: that account,
        cooling down or not; an unknown id raises ``NotFound``, a disabled or expired one ``Conflict``.
        """
        now = utcnow()
        if account_id is not None:
            account = await self.get(account_id)
            if account is None:
                raise NotFound(f"No account with id {account_id}", param="token_id", code="token_not_found")
            if not account.enabled:
                raise Conflict(f"Account {account_id} is disabled", param="token_id", code="account_disabled")
            if account.expires_at is not None and account.expires_at <= now:
                raise Conflict(
                    f"The access token of account {account_id} has expired",
                    param="token_id",
                    code="account_expired",
                )
            return account
        least_recent = (
            sa.select(Account.id)
            .where(
                Account.enabled.is_(True),
                sa.or_(Account.expires_at.is_(None), Account.expires_at > now),
                sa.or_(Account.cooldown_until.is_(None), Account.cooldown_until <= now),
            )
            .order_by(Account.last_used_at.asc().nulls_first(), Account.id)
            .limit(1)
            .scalar_subquery()
        )
        async with self._one() as session:
            result = await session.execute(
                sa.update(Account)
                .where(Account.id == least_recent)
                .values(last_used_at=now)
                .returning(Account)
                .execution_options(synchronize_session=False)
            )
            account = result.scalars().one_or_none()
            await session.commit()
            return account
