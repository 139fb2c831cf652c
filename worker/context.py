"""Per-process resources for the worker: built lazily in each Celery child.

A prefork child gets its own event loop, database pool, Redis client and HTTP
clients the first time it runs a task; nothing is created at import time or
shared across processes or loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_sessionmaker
from shared.events import Publisher
from shared.jobs import JobRepo
from shared.leases import Leases
from shared.names import Keys
from shared.pool import Pool
from shared.queue import Enqueuer
from shared.secrets import SecretBox
from shared.settings import Settings
from shared.sora.client import SoraClient
from shared.storage import LocalStorage

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    keys: Keys
    jobs: JobRepo
    pool: Pool
    publisher: Publisher
    sora: SoraClient
    storage: LocalStorage
    enqueue: Enqueuer

    @classmethod
    def build(cls, settings: Settings, celery: Celery) -> Context:
        engine = create_engine(settings, pool_size=2)
        sessions = create_sessionmaker(engine)
        redis = Redis.from_url(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        return cls(
            settings=settings,
            engine=engine,
            redis=redis,
            keys=keys,
            jobs=JobRepo(sessions),
            pool=Pool(
                sessions, Leases(redis, keys, settings.lease_ttl_s), SecretBox(settings.encryption_key)
            ),
            publisher=Publisher(redis, keys),
            sora=SoraClient(settings),
            storage=LocalStorage(settings.media_dir),
            enqueue=Enqueuer(celery),
        )

    async def aclose(self) -> None:
        await self.sora.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


class Runtime:
    """One event loop and one Context per process."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._runner: asyncio.Runner | None = None
        self._context: Context | None = None

    def run(self, factory: Any, *args: Any) -> Any:
        """Runs ``factory(context, *args)`` (a coroutine function) to completion on this process's loop."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._context is None:
            self._context = Context.build(self._settings, self._celery)
        coroutine: Coroutine[Any, Any, T] = factory(self._context, *args)
        return self._runner.run(coroutine)

    def close(self) -> None:
        if self._runner is not None:
            if self._context is not None:
                self._runner.run(self._context.aclose())
            self._runner.close()
        self._runner = None
        self._context = None
