"""Group commit for accepted creates: many requests share one INSERT and one Redis round trip.

A create costs little CPU of its own; what it paid for was one transaction, one Celery publish and one
announcement each. Here each step collects whatever arrived while its previous round was in flight and does
it once for all of them: at low load a request goes alone and at once, under load the rounds grow, and a
request never waits for a timer. Nothing changes for the job: its row is committed before the client hears
of it, its submit message is the one Celery would send, and a message that could not be sent is sent again
by the sweeper (the job stays ``queued`` with an old ``enqueued_at``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import configure_mappers

from shared.db import autocommit
from shared.jobs import JobRepo
from shared.models import Job
from shared.names import Keys
from shared.queue import TaskMessages

Item = TypeVar("Item")
Result = TypeVar("Result")
_JOBS = Job.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(column.key for column in _JOBS.columns)
_INSERT = pg_insert(_JOBS).on_conflict_do_nothing().returning(_JOBS.c.id)


def session_copy(job: Job) -> Job:
    """A job SQLAlchemy can track (add to a session, change attributes of), from one built with
    ``Job.model_construct``, which skips the instance state to cost a fifth as much."""
    return Job(**{name: getattr(job, name) for name in _COLUMNS})


class GroupCommit(Generic[Item, Result]):
    """Runs ``flush`` over everything submitted while the previous ``flush`` ran (at most ``max_size`` at a
    time). ``flush`` returns one result per item, in order; a result that is an exception is raised to that
    item's caller alone, and an exception raised by ``flush`` goes to every caller of that round."""

    def __init__(self, flush: Callable[[list[Item]], Awaitable[list[Result | BaseException]]], max_size: int):
        self._flush = flush
        self._max_size = max_size
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        # A caller that goes away (a client that hung up) does not take the round down with it.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._pending:
                round_ = self._pending[: self._max_size]
                del self._pending[: self._max_size]
                try:
                    results = await self._flush([item for item, _ in round_])
                except BaseException as exc:  # handed to the callers
                    for _, future in round_:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(round_, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._runner = None
            # Stopped half-way (the process is shutting down): whoever still waits hears of it.
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(RuntimeError("the create batch was stopped"))
            self._pending.clear()


class Admission:
    """Stores new jobs and starts them, batched across concurrent requests."""

    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        keys: Keys,
        jobs: JobRepo,
        messages: TaskMessages,
        *,
        max_batch: int = 256,
    ) -> None:
        # A job built with ``Job.model_construct`` reads its columns through SQLAlchemy's attributes, which
        # work only once the mappers are configured; a fresh process's first request may be a create.
        configure_mappers()
        # One statement is atomic on its own: in autocommit there is no BEGIN and COMMIT round trip.
        self._engine = autocommit(engine)
        self._redis = redis
        self._keys = keys
        self._jobs = jobs
        self._messages = messages
        self._inserts: GroupCommit[Job, bool] = GroupCommit(self._insert_many, max_batch)
        self._starts: GroupCommit[Sequence[str], None] = GroupCommit(self._start_many, max_batch)

    async def insert(self, job: Job) -> tuple[Job, bool]:
        """Like ``JobRepo.insert``: the job and True, or the job its idempotency key names and False."""
        if await self._inserts.submit(job):
            return job, True
        # Its id or (much more likely) its owner's idempotency key is taken: the repository decides which
        # stored job answers it, and whether an old use of the key is released first. It stores through a
        # session, so it gets a session-bound copy of a job that was built without one.
        return await self._jobs.insert(session_copy(job))

    async def start(self, job_ids: Sequence[str]) -> None:
        """Sends committed jobs to the workers and announces them to live job lists (the console)."""
        await self._starts.submit(job_ids)

    async def _insert_many(self, jobs: list[Job]) -> list[bool | BaseException]:
        rows = [{name: getattr(job, name) for name in _COLUMNS} for job in jobs]
        try:
            async with self._engine.connect() as connection:
                inserted = set((await connection.execute(_INSERT, rows)).scalars())
        except DBAPIError as exc:
            if len(jobs) == 1 or exc.connection_invalidated:
                raise
            # One row Postgres refused must not fail the others: each on its own.
            return list(
                await asyncio.gather(*(self._insert_one(job) for job in jobs), return_exceptions=True)
            )
        return [job.id in inserted for job in jobs]

    async def _insert_one(self, job: Job) -> bool:
        return (await self._insert_many([job]))[0] is True

    async def _start_many(self, batches: list[Sequence[str]]) -> list[BaseException | None]:
        job_ids = [job_id for batch in batches for job_id in batch]
        async with self._redis.pipeline(transaction=False) as pipe:
            self._messages.add_to(pipe, job_ids)
            channel = self._keys.jobs_created_channel()
            for job_id in job_ids:
                pipe.publish(channel, job_id)
            await pipe.execute()
        return [None] * len(batches)
