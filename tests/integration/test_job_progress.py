"""A poll's progress for many jobs in one statement, on real Postgres: it only ever goes up."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shared.db import create_engine, create_sessionmaker
from shared.jobs import JobRepo
from shared.models import Job, JobState
from shared.settings import Settings
from shared.timeutil import utcnow

pytestmark = pytest.mark.anyio


@pytest.fixture
async def jobs(settings: Settings) -> AsyncIterator[JobRepo]:
    engine = create_engine(settings, pool_size=1)
    try:
        yield JobRepo(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _job(jobs: JobRepo, state: str, progress: int) -> str:
    job_id = f"video_{secrets.token_hex(16)}"
    now = utcnow()
    await jobs.insert(
        Job(
            id=job_id,
            kind="video",
            owner="progress-test",
            model="sora-2",
            prompt="progress",
            seconds=10,
            size="1280x720",
            state=state,
            account_id=9101,
            progress=progress,
            upstream_status="queued",
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(hours=1),
        )
    )
    return job_id


async def test_progress_of_many_jobs_only_goes_up_and_makes_new_versions(jobs: JobRepo) -> None:
    ahead, behind, level = [await _job(jobs, JobState.RUNNING, 30) for _ in range(3)]
    finishing = await _job(jobs, JobState.FINALIZING, 99)
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
