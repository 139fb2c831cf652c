"""A poll's progress for many jobs in one statement, on real Postgres: it only ever goes up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.db import create_engine, create_sessionmaker
from shared.jobs import JobRepo
from shared.models import JobState
from shared.settings import Settings
from tests.integration.conftest import insert_job

pytestmark = pytest.mark.anyio


@pytest.fixture
async def jobs(settings: Settings) -> AsyncIterator[JobRepo]:
    engine = create_engine(settings, pool_size=1)
    try:
        yield JobRepo(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def test_progress_of_many_jobs_only_goes_up_and_makes_new_versions(jobs: JobRepo) -> None:
    ahead, behind, level = [await insert_job(jobs, JobState.RUNNING, 30) for _ in range(3)]
    finishing = await insert_job(jobs, JobState.FINALIZING, 99)
    before = {job_id: await jobs.get(job_id) for job_id in (ahead, behind, level, finishing)}

    changed = await jobs.raise_progress_many(
        [(ahead, 45, "running"), (behind, 20, "running"), (level, 30, "running"), (finishing, 100, "x")]
    )

    assert [(job.id, job.progress, job.upstream_status) for job in changed] == [(ahead, 45, "running")]
    after = {job_id: await jobs.get(job_id) for job_id in before}
    assert after[ahead].seq == before[ahead].seq + 1 and after[ahead].progress == 45
    assert after[ahead].updated_at > before[ahead].updated_at
    for unchanged in (behind, level, finishing):
        assert (after[unchanged].progress, after[unchanged].seq, after[unchanged].upstream_status) == (
            before[unchanged].progress,
            before[unchanged].seq,
            before[unchanged].upstream_status,
        )
    assert await jobs.raise_progress_many([]) == []
