"""Which commits wait for Postgres's disk flush: by default the worker's do not (each step is resumable)
except the changes an upstream call with lasting effects relies on (``durable=True``: the claim before a
create); the API's always do (a created job, a cancel)."""

from __future__ import annotations

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.models import JobState
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings
from tests.integration.conftest import insert_job
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


async def _claims(ctx: Resources) -> dict[str, str | None]:
    """The ``synchronous_commit`` each kind of worker transition ran under, as its statement saw it."""
    seen: dict[str, str | None] = {}
    for durable in (False, True):
        job_id = await insert_job(ctx.jobs, JobState.QUEUED)
        claimed = await ctx.jobs.transition(
            job_id,
            [JobState.QUEUED],
            bump=False,
            durable=durable,
            state=JobState.SUBMITTING,
            upstream_status=sa.func.current_setting("synchronous_commit"),
        )
        assert claimed is not None and claimed.state == JobState.SUBMITTING
        seen["durable" if durable else "plain"] = claimed.upstream_status
    return seen


def test_a_durable_transition_waits_for_the_flush_where_the_worker_does_not(settings: Settings) -> None:
    own = msgspec.structs.replace(settings, worker_synchronous_commit=False)
    runtime = Runtime(own, create_celery(own))
    try:
        assert runtime.run(_claims) == {"plain": "off", "durable": "on"}
    finally:
        runtime.close()


@pytest.mark.anyio
async def test_api_commits_always_wait_for_the_flush(settings: Settings) -> None:
    own = msgspec.structs.replace(settings, worker_synchronous_commit=False)
    async with AsyncTestClient(app=create_app(own)) as client:
        assert await _synchronous_commit(client.app.state.services) == "on"
