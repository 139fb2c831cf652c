"""The account pool: which accounts may take a job, and leasing a slot on one."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.leases import Leases
from shared.models import Account
from shared.secrets import SecretBox
from shared.sora.client import Credentials
from shared.timeutil import utcnow

PRO_PLANS = ("chatgpt_pro",)
_LIMIT_COLUMN = {
    "video": Account.video_concurrency,
    "image": Account.image_concurrency,
    "character": Account.character_concurrency,
}


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
        self.leases = leases
        self._box = box

    async def lease(
        self,
        kind: str,
        job_id: str,
        *,
        requires_pro: bool = False,
        exclude: Collection[int] = (),
        only: int | None = None,
    ) -> Account | None:
        """Takes a slot on the least recently used eligible account that has one (or on ``only``)."""
        limit_column = _LIMIT_COLUMN[kind]
        conditions = _eligible(kind, requires_pro, exclude)
        if only is not None:
            conditions.append(Account.id == only)
        async with self._sessions() as session:
            result = await session.execute(
                sa.select(Account.id, limit_column)
                .where(*conditions)
                .order_by(Account.last_used_at.asc().nulls_first(), Account.id)
            )
            candidates = [(row[0], row[1]) for row in result.all()]
        # Bounded batches keep each Lua call short even with thousands of accounts.
        for start in range(0, len(candidates), 64):
            account_id = await self.leases.acquire_first(kind, job_id, candidates[start : start + 64])
            if account_id is not None:
                async with self._sessions() as session:
                    result = await session.execute(
                        sa.update(Account)
                        .where(Account.id == account_id)
                        .values(last_used_at=utcnow())
                        .returning(Account)
                        .execution_options(synchronize_session=False)
                    )
                    account = result.scalars().one()
                    await session.commit()
                    return account
        return None

    async def any_eligible(
        self, kind: str, *, requires_pro: bool = False, exclude: Collection[int] = ()
    ) -> bool:
        async with self._sessions() as session:
            result = await session.execute(
                sa.select(sa.func.count()).select_from(Account).where(*_eligible(kind, requires_pro, exclude))
            )
            return int(result.scalar_one()) > 0

    async def any_capable(self, kind: str, *, requires_pro: bool) -> bool:
        """Could any account ever serve this (enabled, plan fits), ignoring passing states like cooldowns?"""
        conditions = [Account.enabled.is_(True), _LIMIT_COLUMN[kind] > 0]
        if requires_pro:
            conditions.append(Account.plan_type.in_(PRO_PLANS))
        async with self._sessions() as session:
            result = await session.execute(sa.select(sa.func.count()).select_from(Account).where(*conditions))
            return int(result.scalar_one()) > 0

    async def capacity(self, kind: str) -> int:
        """Total slots of the accounts that could take a job now."""
        async with self._sessions() as session:
            result = await session.execute(
                sa.select(sa.func.coalesce(sa.func.sum(_LIMIT_COLUMN[kind]), 0)).where(
                    *_eligible(kind, False, ())
                )
            )
            return int(result.scalar_one())

    async def get(self, account_id: int) -> Account | None:
        async with self._sessions() as session:
            return await session.get(Account, account_id)

    async def update(self, account_id: int, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        async with self._sessions() as session:
            await session.execute(sa.update(Account).where(Account.id == account_id).values(**values))
            await session.commit()

    def credentials(self, account: Account) -> Credentials:
        assert account.id is not None
        return Credentials(
            account_id=account.id,
            access_token=self._box.open(account.access_token_enc),
            session_token=self._box.open_optional(account.session_token_enc),
            proxy_url=account.proxy_url,
        )
