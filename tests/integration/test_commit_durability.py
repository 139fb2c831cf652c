"""Which commits wait for Postgres's disk flush: the worker's do not by default (each step is resumable),
the API's always do (a created job, a cancel)."""

from __future__ import annotations

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings
from worker.context import Runtime


async def _synchronous_commit(ctx: Resources) -> str:
    async with ctx.sessions() as session:
        return str((await session.execute(sa.text("SHOW synchronous_commit"))).scalar_one())


@pytest.mark.parametrize(("setting", "seen"), [(False, "off"), (True, "on")])
def test_worker_commits_follow_worker_synchronous_commit(
    settings: Settings, setting: bool, seen: str
) -> None:
    own = msgspec.structs.replace(settings, worker_synchronous_commit=setting)
    runtime = Runtime(own, create_celery(own))
    try:
        assert runtime.run(_synchronous_commit) == seen
    finally:
        runtime.close()


@pytest.mark.anyio
async def test_api_commits_always_wait_for_the_flush(settings: Settings) -> None:
    own = msgspec.structs.replace(settings, worker_synchronous_commit=False)
    async with AsyncTestClient(app=create_app(own)) as client:
        assert await _synchronous_commit(client.app.state.services) == "on"
