"""What the API's handlers use, built once in the app's lifespan."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, create_sessionmaker
from shared.jobs import JobRepo
from shared.leases import Leases
from shared.names import Keys
from shared.pool import Pool
from shared.queue import Enqueuer, create_celery
from shared.secrets import SecretBox
from shared.settings import Settings
from shared.sora.client import SoraClient
from shared.storage import LocalStorage


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    keys: Keys
    jobs: JobRepo
    pool: Pool
    box: SecretBox
    sora: SoraClient
    storage: LocalStorage
    enqueue: Enqueuer
    url_key: str

    @classmethod
    def build(cls, settings: Settings) -> Services:
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        keys = Keys(settings.redis_prefix)
        box = SecretBox(settings.encryption_key)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            keys=keys,
            jobs=JobRepo(sessions),
            pool=Pool(sessions, Leases(redis, keys, settings.lease_ttl_s), box),
            box=box,
            sora=SoraClient(settings),
            storage=LocalStorage(settings.media_dir),
            enqueue=Enqueuer(create_celery(settings)),
            url_key=settings.url_signing_key
            or hashlib.sha256(b"download-urls:" + settings.encryption_key.encode()).hexdigest(),
        )

    async def aclose(self) -> None:
        await self.sora.aclose()
        await self.redis.aclose()
        await self.engine.dispose()
