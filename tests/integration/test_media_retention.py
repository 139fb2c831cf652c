"""media.expire on the local backend, against real Postgres: what is due goes, once; the rest stays.

The S3 backend's run of the same task is in tests/e2e/test_storage_s3.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.jobs import new_image_id, new_video_id
from shared.models import Job, JobState
from shared.queue import create_celery
from shared.resources import Resources
from shared.secrets import key_fingerprint
from shared.settings import Settings
from shared.timeutil import utcnow
from tests.infra import Services
from tests.integration.conftest import CLIENT
from worker.engine import media

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_database(services: Services) -> str:
    # A database of its own: the task looks at every job, and other tests' jobs are none of its business.
    return services.create_database()


@pytest.fixture
async def ctx(settings: Settings, own_database: str, tmp_path) -> AsyncIterator[Resources]:
    own = msgspec.structs.replace(settings, database_url=own_database, media_dir=str(tmp_path / "media"))
    resources = Resources.build(own, create_celery(own), db_pool_size=2)
    try:
        yield resources
    finally:
        await resources.aclose()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _job(ctx: Resources, job_id: str, kind: str, state: str, **values) -> None:
    now = utcnow()
    job = Job(
        id=job_id,
        kind=kind,
        owner=key_fingerprint("sk-test-one"),
        state=state,
        model="sora-2",
        prompt="retention",
        seconds=10,
        size="720x1280",
        deadline_at=now + timedelta(hours=1),
        **values,
    )
    async with ctx.sessions() as session:
        session.add(job)
        await session.commit()


async def test_expired_media_goes_once_and_the_rest_stays(ctx: Resources) -> None:
    now = utcnow()
    ttl = timedelta(seconds=ctx.settings.media_ttl_s)
    past, future = now - timedelta(seconds=5), now + timedelta(hours=1)
    expired, fresh, failed_old, failed_new, running = (new_video_id() for _ in range(5))
    image = new_image_id()
    files = {
        expired: [f"videos/{expired}/video.mp4", f"videos/{expired}/thumbnail.webp"],
        fresh: [f"videos/{fresh}/video.mp4"],
        image: [f"images/{image}/image.png", f"inputs/{image}/reference.png"],
        failed_old: [f"inputs/{failed_old}/reference.png"],
        failed_new: [f"inputs/{failed_new}/reference.png"],
        running: [f"inputs/{running}/reference.png"],
    }
    for keys in files.values():
        for key in keys:
            await ctx.storage.write(key, _body(b"media"))
    done = {"state": JobState.COMPLETED, "completed_at": now - timedelta(seconds=30)}
    media_of = {"media_key": files[expired][0], "thumbnail_key": files[expired][1]}
    await _job(ctx, expired, "video", expires_at=past, **media_of, **done)
    await _job(ctx, fresh, "video", media_key=files[fresh][0], expires_at=future, **done)
    await _job(ctx, image, "image", media_key=files[image][0], expires_at=past, **done)
    # Failed jobs have no expires_at: their staged inputs go MEDIA_TTL_S after they ended.
    failed = {"state": JobState.FAILED, "error_code": "generation_failed"}
    await _job(ctx, failed_old, "video", completed_at=now - ttl - timedelta(seconds=1), **failed)
    await _job(ctx, failed_new, "video", completed_at=now, **failed)
    await _job(ctx, running, "video", state=JobState.RUNNING)

    assert await media.expire(ctx) == {"purged": 3, "objects": 5, "failed": 0}
    for job_id, keys in files.items():
        gone = job_id in (expired, image, failed_old)
        for key in keys:
            assert (await ctx.storage.size(key) is None) is gone, key
        job = await ctx.jobs.get(job_id)
        assert job is not None and (job.media_purged_at is not None) is gone, job_id

    # Done once: nothing is due any more, and the marks stay as they were.
    marked = (await ctx.jobs.get(expired)).media_purged_at  # type: ignore[union-attr]
    assert await media.expire(ctx) == {"purged": 0, "objects": 0, "failed": 0}
    assert (await ctx.jobs.get(expired)).media_purged_at == marked  # type: ignore[union-attr]

    # Expired media answers 404 `expired`, whether the clock or the task got there first.
    async with AsyncTestClient(app=create_app(ctx.settings)) as client:
        for path in (f"videos/{expired}", f"images/{image}"):
            answer = await client.get(f"/v1/{path}/content", headers=CLIENT)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "expired", answer.text
        # Purged while its expires_at still lies ahead (an operator shortened it): expired all the same.
        async with ctx.sessions() as session:
            await session.execute(sa.update(Job).where(Job.id == fresh).values(media_purged_at=utcnow()))
            await session.commit()
        answer = await client.get(f"/v1/videos/{fresh}/content", headers=CLIENT)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "expired", answer.text
