"""The long-lived clients both sides use, built in one place.

The API builds them in its lifespan, a worker child on its first task; nothing
is created at import time or shared across processes or event loops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from celery import Celery
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import names
from shared.admission import Admission
from shared.db import create_engine, create_sessionmaker
from shared.events import Publisher
from shared.jobs import JobRepo
from shared.leases import Leases
from shared.names import Keys
from shared.pool import Pool
from shared.queue import Enqueuer, TaskMessages
from shared.secrets import SecretBox
from shared.settings import Settings
from shared.sora.client import SoraClient
from shared.storage import Storage, create_storage


def redis_client(url: str, **options: object) -> Redis:
    """A Redis client that reconnects after a Redis restart: a pooled connection the server closed fails
    once, and the command is sent again on a new one instead of failing the step that sent it."""
    return Redis.from_url(
        url,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 3),
        retry_on_error=[RedisConnectionError],
        **options,  # type: ignore[arg-type]
    )


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    keys: Keys
    box: SecretBox
    jobs: JobRepo
    pool: Pool
    publisher: Publisher
    sora: SoraClient
    storage: Storage
    enqueue: Enqueuer
    # The same tasks, many at a time in one round trip (shared.queue.TaskMessages).
    submit_messages: TaskMessages
    poll_messages: TaskMessages
    finalize_messages: TaskMessages
    # Batched inserts and submit messages for the API's creates.
    admission: Admission
    # Signs download links (Video.data[].url).
    url_key: str

    @classmethod
    def build(
        cls,
        settings: Settings,
        celery: Celery,
        *,
        db_pool_size: int,
        db_max_overflow: int | None = None,
        synchronous_commit: bool = True,
    ) -> Resources:
        engine = create_engine(
            settings,
            pool_size=db_pool_size,
            max_overflow=db_max_overflow,
            synchronous_commit=synchronous_commit,
        )
        sessions = create_sessionmaker(engine)
        redis = redis_client(settings.redis_url, socket_timeout=10)
        keys = Keys(settings.redis_prefix)
        box = SecretBox(settings.encryption_key)
        jobs = JobRepo(sessions)
        submit_messages = TaskMessages(celery, names.TASK_VIDEO_SUBMIT)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            keys=keys,
            box=box,
            jobs=jobs,
            pool=Pool(sessions, Leases(redis, keys, settings.lease_ttl_s), box),
            publisher=Publisher(redis, keys),
            sora=SoraClient(settings),
            storage=create_storage(settings),
            enqueue=Enqueuer(celery),
            submit_messages=submit_messages,
            poll_messages=TaskMessages(celery, names.TASK_POLL_ACCOUNTS),
            finalize_messages=TaskMessages(celery, names.TASK_VIDEO_FINALIZE),
            admission=Admission(engine, redis, keys, jobs, submit_messages),
            url_key=settings.url_signing_key
            or hashlib.sha256(b"download-urls:" + settings.encryption_key.encode()).hexdigest(),
        )

    async def aclose(self) -> None:
        await self.sora.aclose()
        await self.storage.aclose()
        await self.redis.aclose()
        await self.engine.dispose()
