from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.jobs import JobRepo
from shared.models import Account, Job
from shared.queue import create_celery
from shared.resources import Resources
from shared.secrets import SecretBox, token_hash
from shared.settings import Settings
from shared.timeutil import utcnow

CLIENT = {"Authorization": "Bearer sk-test-one"}
OTHER_CLIENT = {"Authorization": "Bearer sk-test-two"}
ADMIN = {"Authorization": "Bearer admin-test"}
POOL_TOKEN = "integration-pool-account-token"


async def insert_job(
    jobs: JobRepo,
    state: str,
    progress: int = 0,
    *,
    kind: str = "video",
    account_id: int | None = 9101,
    **values: Any,
) -> str:
    """A job in ``state`` at ``progress``, stored as if created and enqueued now (``values`` override any
    column); returns its id."""
    job_id = f"video_{secrets.token_hex(16)}"
    now = utcnow()
    columns: dict[str, Any] = {"upstream_status": "queued", "enqueued_at": now, "updated_at": now, **values}
    await jobs.insert(
        Job(
            id=job_id,
            kind=kind,
            owner="jobs-test",
            model="sora-2",
            prompt="a job",
            seconds=10,
            size="1280x720",
            state=state,
            account_id=account_id,
            progress=progress,
            created_at=now,
            deadline_at=now + timedelta(hours=1),
            **columns,
        )
    )
    return job_id


@asynccontextmanager
async def own_resources(settings: Settings, **changes: Any) -> AsyncIterator[Resources]:
    """A worker's resources on a Redis key prefix of their own (and ``changes`` to the settings); the keys
    they made are removed afterwards."""
    prefix = f"{settings.redis_prefix}{secrets.token_hex(3)}:"
    own = msgspec.structs.replace(settings, redis_prefix=prefix, **changes)
    resources = Resources.build(own, create_celery(own), db_pool_size=2)
    try:
        yield resources
    finally:
        async for key in resources.redis.scan_iter(match=resources.keys.pattern()):
            await resources.redis.delete(key)
        await resources.aclose()


async def set_pool_plan(settings: Settings, plan: str | None, client: AsyncTestClient | None = None) -> None:
    """The pool of these tests: one account (no worker runs here, so it is never called). Written straight
    to Postgres, as an operator's SQL would be: ``client``'s app is told, as it would otherwise trust what
    it last heard for a few seconds (``Pool.any_capable``)."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            hashed = token_hash(POOL_TOKEN)
            exists = (
                await session.execute(sa.select(Account.id).where(Account.token_hash == hashed))
            ).first()
            if exists is None:
                box = SecretBox(settings.encryption_key)
                session.add(Account(token_hash=hashed, access_token_enc=box.seal(POOL_TOKEN), plan_type=plan))
            else:
                await session.execute(
                    sa.update(Account).where(Account.token_hash == hashed).values(plan_type=plan)
                )
            await session.commit()
    finally:
        await engine.dispose()
    if client is not None:
        client.app.state.services.pool.forget_capable()


@pytest.fixture(scope="session", autouse=True)
def pool_account(settings: Settings) -> None:
    asyncio.run(set_pool_plan(settings, "chatgpt_pro"))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client
