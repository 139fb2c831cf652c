"""The long-lived clients both sides use, built in one place.

The API builds them in its lifespan, a worker child on its first task; nothing
is created at import time or shared across processes or event loops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from celery import Celery
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

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
    storage: LocalStorage
    enqueue: Enqueuer
    # Signs download links (Video.data[].url).
    url_key: str

    @classmethod
    def build(cls, settings: Settings, celery: Celery, *, db_pool_size: int) -> Resources:
        engine = create_engine(settings, pool_size=db_pool_size)
        sessions = create_sessionmaker(engine)
        redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        keys = Keys(settings.redis_prefix)
        box = SecretBox(settings.encryption_key)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            keys=keys,
            box=box,
            jobs=JobRepo(sessions),
            pool=Pool(sessions, Leases(redis, keys, settings.lease_ttl_s), box),
            publisher=Publisher(redis, keys),
            sora=SoraClient(settings),
            storage=LocalStorage(settings.media_dir),
            enqueue=Enqueuer(celery),
            url_key=settings.url_signing_key
            or hashlib.sha256(b"download-urls:" + settings.encryption_key.encode()).hexdigest(),
        )

    async def aclose(self) -> None:
        await self.sora.aclose()
        await self.redis.aclose()
        await self.engine.dispose()
