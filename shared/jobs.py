"""Job rows: creation and every state change.

Each change is one conditional ``UPDATE … WHERE state IN (…) RETURNING``, so a
duplicate or late message can never move a job backwards or finish it twice.
Every change bumps ``seq``, the version subscribers order events by.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import single_statement_sessions
from shared.models import Job, JobState
from shared.timeutil import utcnow

JOB_ID_PREFIXES = ("video_", "img_", "char_")
# What every job id looks like (new_*_id); anything else names no job and is not looked up.
JOB_ID = re.compile(r"(?:video|img|char)_[0-9a-f]{32}")


# Rows of (id, progress, upstream_status) from three bound arrays: one statement for any number of jobs,
# and one cached compilation.
_PROGRESS_ROWS = sa.func.unnest(
    sa.bindparam("ids", type_=ARRAY(sa.Text)),
    sa.bindparam("progress", type_=ARRAY(sa.Integer)),
    sa.bindparam("statuses", type_=ARRAY(sa.Text)),
).table_valued(
    sa.column("id", sa.Text), sa.column("progress", sa.Integer), sa.column("upstream_status", sa.Text)
)


@functools.cache
def _transition_statement(
    from_states: tuple[str, ...], columns: tuple[str, ...], *, bump: bool, attempt: bool
) -> sa.Update:
    """``JobRepo.transition``'s UPDATE for one set of states and columns, with its values as parameters
    (``job_id``, ``new_<column>``, ``new_attempt``).

    Built once per shape: a statement object keeps its cache key, so a call neither builds the statement
    again nor walks it to find its compiled form. A worker makes a handful of shapes, each many times.
    """
    table = Job.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {name: sa.bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
    if bump:
        values["seq"] = Job.seq + 1
    if attempt:
        values["attempts"] = Job.attempts.op("||")(sa.bindparam("new_attempt", type_=JSONB))
    return (
        sa.update(Job)
        .where(Job.id == sa.bindparam("job_id"), Job.state.in_(list(from_states)))
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False)
    )


# Makes the one transaction it runs in wait for Postgres's disk flush, whatever the connection's default.
_FLUSHED = sa.text("SET LOCAL synchronous_commit = on")


def new_video_id() -> str:
    return "video_" + secrets.token_hex(16)


def new_image_id() -> str:
    return "img_" + secrets.token_hex(16)


def new_character_id() -> str:
    return "char_" + secrets.token_hex(16)


def new_job_times(deadline_s: float) -> dict[str, Any]:
    """The timestamps of a job that is created and enqueued now."""
    now = utcnow()
    return {
        "created_at": now,
        "updated_at": now,
        "enqueued_at": now,
        "deadline_at": now + timedelta(seconds=deadline_s),
    }


def attempt_entry(account_id: int | None, error_class: str, message: str) -> dict[str, Any]:
    return {
        "at": utcnow().isoformat(),
        "account_id": account_id,
        "error_class": error_class,
        "message": message,
    }


class JobRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # For the methods that run one statement: no BEGIN and COMMIT round trips around it.
        self._one = single_statement_sessions(sessions)

    async def insert(self, job: Job, *, key_window: timedelta = timedelta(hours=24)) -> tuple[Job, bool]:
        """Stores a new job. With an idempotency key this owner used within ``key_window``, returns that job
        instead (the caller compares ``request_hash``); an older use of the key is released first."""
        for _ in range(3):
            async with self._sessions() as session:
                session.add(job)
                try:
                    await session.commit()
                    return job, True
                except IntegrityError:
                    await session.rollback()
                    if job.idempotency_key is None:
                        raise
            existing = await self.by_idempotency_key(job.owner, job.idempotency_key)
            if existing is None:
                continue  # released meanwhile: try again
            if existing.created_at >= utcnow() - key_window:
                return existing, False
            async with self._sessions() as session:
                await session.execute(
                    sa.update(Job).where(Job.id == existing.id).values(idempotency_key=None)
                )
                await session.commit()
        raise RuntimeError("could not store the job under its idempotency key")

    async def get(self, job_id: str) -> Job | None:
        async with self._one() as session:
            return await session.get(Job, job_id)

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job).where(Job.owner == owner, Job.idempotency_key == key)
            )
            return result.scalars().first()

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        after: Job | None,
        ascending: bool,
        kinds: Sequence[str] | None = None,
    ) -> list[Job]:
        query = sa.select(Job).where(Job.owner == owner, Job.deleted_at.is_(None))
        if kinds is not None:
            query = query.where(Job.kind.in_(list(kinds)))
        order = (Job.created_at, Job.id) if ascending else (Job.created_at.desc(), Job.id.desc())
        if after is not None:
            key = sa.tuple_(Job.created_at, Job.id)
            marker = sa.tuple_(sa.literal(after.created_at), sa.literal(after.id))
            query = query.where(key > marker if ascending else key < marker)
        async with self._one() as session:
            result = await session.execute(query.order_by(*order).limit(limit))
            return list(result.scalars().all())

    async def by_generation_id(self, generation_id: str, owner: str) -> Job | None:
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job).where(
                    Job.generation_id == generation_id, Job.owner == owner, Job.deleted_at.is_(None)
                )
            )
            return result.scalars().first()

    @contextlib.asynccontextmanager
    async def _writing(self, *, durable: bool) -> AsyncIterator[AsyncSession]:
        """A session for one write: in autocommit, or with ``durable`` in a transaction whose commit waits
        for Postgres's disk flush (``_FLUSHED``)."""
        if not durable:
            async with self._one() as session:
                yield session
            return
        async with self._sessions() as session:
            await session.execute(_FLUSHED)
            yield session

    async def set_post_id(self, job_id: str, post_id: str) -> None:
        """Kept on disk before it is used: the post it names exists upstream, and is not made twice."""
        async with self._writing(durable=True) as session:
            await session.execute(sa.update(Job).where(Job.id == job_id).values(post_id=post_id))
            await session.commit()

    async def in_group(self, group_id: str) -> list[Job]:
        async with self._one() as session:
            result = await session.execute(sa.select(Job).where(Job.group_id == group_id).order_by(Job.id))
            return list(result.scalars().all())

    async def insert_group(self, jobs: Sequence[Job]) -> None:
        async with self._sessions() as session:
            session.add_all(jobs)
            await session.commit()

    async def mark_deleted(self, job_id: str) -> None:
        async with self._one() as session:
            await session.execute(sa.update(Job).where(Job.id == job_id).values(deleted_at=utcnow()))
            await session.commit()

    async def in_states(self, states: Sequence[str], **filters: Any) -> list[Job]:
        query = sa.select(Job).where(Job.state.in_(states))
        for column, value in filters.items():
            query = query.where(getattr(Job, column) == value)
        async with self._one() as session:
            result = await session.execute(query.order_by(Job.created_at))
            return list(result.scalars().all())

    async def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        *,
        attempt: dict[str, Any] | None = None,
        where: Sequence[sa.ColumnElement[bool]] = (),
        bump: bool = True,
        durable: bool = False,
        **values: Any,
    ) -> Job | None:
        """Applies ``values`` if the job is still in one of ``from_states``; returns the new row or None.

        ``bump`` makes it a new version that the caller publishes; bookkeeping that
        clients cannot see (``bump=False``) leaves ``seq`` alone, so streams have no gaps.
        ``durable`` returns only once the change is on disk, even where commits do not wait for that
        (``WORKER_SYNCHRONOUS_COMMIT``): for a change that an upstream call with lasting effects relies
        on, such as the claim made before a create.
        """
        values.setdefault("updated_at", utcnow())
        params: dict[str, Any] = {}
        if not where and not any(isinstance(value, sa.ClauseElement) for value in values.values()):
            # The usual case: one statement per shape, built once, its values bound on each call.
            statement = _transition_statement(
                tuple(from_states), tuple(sorted(values)), bump=bump, attempt=attempt is not None
            )
            params = {f"new_{name}": value for name, value in values.items()}
            params["job_id"] = job_id
            if attempt is not None:
                params["new_attempt"] = [attempt]
        else:
            if bump:
                values["seq"] = Job.seq + 1
            if attempt is not None:
                values["attempts"] = Job.attempts.op("||")(sa.type_coerce([attempt], JSONB))
            statement = (
                sa.update(Job)
                .where(Job.id == job_id, Job.state.in_(list(from_states)), *where)
                .values(**values)
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
        async with self._writing(durable=durable) as session:
            result = await session.execute(statement, params)
            row = result.scalars().first()
            await session.commit()
            return row

    async def merge_params(
        self,
        job_id: str,
        from_states: Iterable[str],
        params: dict[str, Any],
        *,
        unless_key: str | None = None,
        bump: bool = False,
        durable: bool = False,
        **values: Any,
    ) -> Job | None:
        """Adds ``params`` to the job's params (a step's result, kept before the next step runs).

        With ``unless_key``, only a job whose params lack that key changes: a step that must happen
        once (a prompt rewritten, a chain applied) stays done when a redelivered message repeats it.
        """
        where = [~Job.params.has_key(unless_key)] if unless_key else []
        return await self.transition(
            job_id,
            from_states,
            where=where,
            bump=bump,
            durable=durable,
            params=Job.params.op("||")(sa.type_coerce(params, JSONB)),
            **values,
        )

    async def raise_progress(self, job_id: str, progress: int, upstream_status: str | None) -> Job | None:
        """Progress only goes up (the upstream's can drop between polls); no change, no new version."""
        return await self.transition(
            job_id,
            [JobState.RUNNING],
            where=[Job.progress < progress],
            progress=progress,
            upstream_status=upstream_status,
            missing_since=None,
        )

    async def raise_progress_many(self, updates: Sequence[tuple[str, int, str | None]]) -> list[Job]:
        """``raise_progress`` for many ``(job_id, progress, upstream_status)`` in one statement (a poll's
        jobs); returns the jobs that changed. One UPDATE of 300 rows costs about what three single ones do."""
        if not updates:
            return []
        ids, progress, statuses = (list(column) for column in zip(*updates, strict=True))
        new = _PROGRESS_ROWS.render_derived(name="new")  # AS new(id, progress, upstream_status)
        statement = (
            sa.update(Job)
            .where(Job.id == new.c.id, Job.state == JobState.RUNNING, Job.progress < new.c.progress)
            .values(
                progress=new.c.progress,
                upstream_status=new.c.upstream_status,
                missing_since=None,
                updated_at=utcnow(),
                seq=Job.seq + 1,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        async with self._one() as session:
            result = await session.execute(
                statement, {"ids": ids, "progress": progress, "statuses": statuses}
            )
            rows = list(result.scalars().all())
            await session.commit()
            return rows

    async def fail(
        self, job_id: str, code: str, message: str, *, attempt: dict[str, Any] | None = None
    ) -> Job | None:
        return await self.transition(
            job_id,
            JobState.OPEN,
            state=JobState.FAILED,
            error_code=code,
            error_message=message,
            completed_at=utcnow(),
            attempt=attempt,
        )

    async def park(self, job_id: str) -> None:
        """No account can take the job now: it waits for dispatch to send it again."""
        async with self._one() as session:
            await session.execute(
                sa.update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED).values(enqueued_at=None)
            )
            await session.commit()

    async def take_parked(self, kind: str, limit: int) -> list[str]:
        """Marks up to ``limit`` of the oldest parked jobs as enqueued and returns their ids."""
        if limit <= 0:
            return []
        async with self._one() as session:
            picked = (
                sa.select(Job.id)
                .where(Job.kind == kind, Job.state == JobState.QUEUED, Job.enqueued_at.is_(None))
                .order_by(Job.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            result = await session.execute(
                sa.update(Job).where(Job.id.in_(picked)).values(enqueued_at=utcnow()).returning(Job.id)
            )
            ids = list(result.scalars().all())
            await session.commit()
            return ids

    async def stale(
        self,
        state: str,
        column: sa.ColumnElement[datetime],
        older_than: timedelta,
        *,
        before: datetime | None = None,
    ) -> list[str]:
        """Up to 1,000 jobs in ``state`` whose ``column`` is older than ``older_than`` and ``before``."""
        cutoff = utcnow() - older_than
        if before is not None:
            cutoff = min(cutoff, before)
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job.id).where(Job.state == state, column < cutoff).limit(1000)
            )
            return list(result.scalars().all())

    async def touch_enqueued(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            async with self._one() as session:
                await session.execute(sa.update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=utcnow()))
                await session.commit()

    async def overdue(self) -> list[Job]:
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job).where(Job.state.in_(JobState.OPEN), Job.deadline_at < utcnow()).limit(1000)
            )
            return list(result.scalars().all())

    async def running_on(self, account_ids: Sequence[int]) -> list[Job]:
        """The running jobs of these accounts, oldest first."""
        if not account_ids:
            return []
        query = sa.select(Job).where(Job.account_id.in_(account_ids), Job.state == JobState.RUNNING)
        async with self._one() as session:
            result = await session.execute(query.order_by(Job.created_at))
            return list(result.scalars().all())

    async def accounts_with_running_jobs(self) -> list[int]:
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job.account_id).where(Job.state == JobState.RUNNING).distinct()
            )
            return [row for row in result.scalars().all() if row is not None]

    async def count_claiming(self, kind: str) -> int:
        """Jobs that hold a slot or will ask for one soon: submitting and running jobs, and queued jobs whose
        submit message is on its way (sent, not parked, not waiting for a chained job)."""
        waiting_for_chain = Job.params.has_key("after_job") & ~Job.params.has_key("chain_applied")
        sent = sa.and_(Job.state == JobState.QUEUED, Job.enqueued_at.is_not(None), ~waiting_for_chain)
        async with self._one() as session:
            result = await session.execute(
                sa.select(sa.func.count()).where(
                    Job.kind == kind, sa.or_(Job.state.in_(JobState.ACTIVE), sent)
                )
            )
            return int(result.scalar_one())

    async def holding_slots(self) -> set[tuple[str, int, str]]:
        """``(job_id, account_id, kind)`` of every job that occupies an account slot now: submitting and
        running jobs, and characters until they are finalized."""
        holds = sa.or_(
            Job.state.in_(JobState.ACTIVE), sa.and_(Job.kind == "character", Job.state == JobState.FINALIZING)
        )
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job.id, Job.account_id, Job.kind).where(holds, Job.account_id.is_not(None))
            )
            return {(row[0], row[1], row[2]) for row in result.all()}

    async def task_ids_known(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        async with self._one() as session:
            result = await session.execute(
                sa.select(Job.upstream_task_id).where(Job.upstream_task_id.in_(list(task_ids)))
            )
            return {row for row in result.scalars().all() if row}
