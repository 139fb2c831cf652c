"""Idempotency, deletion, the event stream and held creates, through the real app, Postgres and Redis.

Job changes are made here the way a worker makes them (JobRepo transitions, then a publish on Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from threading import Thread

import msgspec
import pytest
import sqlalchemy as sa
from litestar.channels import ChannelsPlugin
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.watch import wait_until_done
from shared.db import create_engine, create_sessionmaker
from shared.events import Publisher
from shared.jobs import JobRepo
from shared.models import Job, JobState
from shared.names import Keys
from shared.settings import Settings
from shared.storage import LocalStorage
from shared.timeutil import utcnow
from tests import strict
from tests.integration.conftest import CLIENT

pytestmark = pytest.mark.anyio


class Worker:
    """Moves jobs through their states like the real worker does."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings, pool_size=2)
        self.jobs = JobRepo(create_sessionmaker(self.engine))
        self.redis = Redis.from_url(settings.redis_url)
        self.publisher = Publisher(self.redis, Keys(settings.redis_prefix))
        self.storage = LocalStorage(settings.media_dir)

    async def step(self, job_id: str, from_state: str, **values) -> None:
        job = await self.jobs.transition(job_id, [from_state], **values)
        assert job is not None
        await self.publisher.publish(job)

    async def complete(self, job_id: str) -> None:
        await self.step(job_id, JobState.QUEUED, state=JobState.RUNNING, progress=1, upstream_task_id=job_id)
        await self.step(job_id, JobState.RUNNING, progress=50)
        await self.step(job_id, JobState.RUNNING, state=JobState.FINALIZING, progress=99)

        async def body() -> AsyncIterator[bytes]:
            yield b"\x00\x00\x00\x18ftypmp42"

        key = f"videos/{job_id}/video.mp4"
        await self.storage.write(key, body())
        await self.step(
            job_id,
            JobState.FINALIZING,
            state=JobState.COMPLETED,
            progress=100,
            media_key=key,
            completed_at=utcnow(),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    fake = Worker(settings)
    yield fake
    await fake.close()


def in_another_process_soon(
    settings: Settings, job_id_of: Callable[[], str | None], delay: float = 0.5
) -> Thread:
    """Completes a job from another thread and event loop, the way a separate worker process would.

    Litestar's test client serves requests through a blocking portal, so an open stream blocks this
    test's own loop: the worker side must not depend on it.
    """

    async def run() -> None:
        other = Worker(settings)
        try:
            for _ in range(100):
                await asyncio.sleep(delay / 5)
                found = await asyncio.to_thread(job_id_of)
                if found:
                    await asyncio.sleep(delay)
                    for job_id in [found] if isinstance(found, str) else found:
                        await other.complete(job_id)
                    return
        finally:
            await other.close()

    thread = Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    return thread


async def _create(client: AsyncTestClient, **body) -> dict:
    response = await client.post("/v1/videos", json={"prompt": "lifecycle", **body}, headers=CLIENT)
    assert response.status_code == 200, response.text
    return response.json()


async def test_reused_idempotency_key_with_another_body_is_a_409(client: AsyncTestClient) -> None:
    headers = {**CLIENT, "Idempotency-Key": "same-key-other-body"}
    first = await client.post("/v1/videos", json={"prompt": "one"}, headers=headers)
    again = await client.post("/v1/videos", json={"prompt": "one"}, headers=headers)
    other = await client.post("/v1/videos", json={"prompt": "two"}, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409 and strict.error(other.content).code == "idempotency_key_reused"


async def test_delete_only_finished_videos_then_404(
    client: AsyncTestClient, worker: Worker, settings
) -> None:
    video = await _create(client)
    running = await client.delete(f"/v1/videos/{video['id']}", headers=CLIENT)
    assert running.status_code == 409 and strict.error(running.content).code == "video_not_finished"

    await worker.complete(video["id"])
    assert (await client.get(f"/v1/videos/{video['id']}/content", headers=CLIENT)).status_code == 200
    deleted = await client.delete(f"/v1/videos/{video['id']}", headers=CLIENT)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": video["id"], "deleted": True, "object": "video.deleted"}
    for path in ("", "/content", "/events"):
        assert (await client.get(f"/v1/videos/{video['id']}{path}", headers=CLIENT)).status_code == 404
    assert await worker.storage.size(f"videos/{video['id']}/video.mp4") is None
    listed = (await client.get("/v1/videos?limit=100", headers=CLIENT)).json()["data"]
    assert video["id"] not in {v["id"] for v in listed}


def _events(text: str) -> list[tuple[str | None, dict]]:
    found = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            found.append((fields.get("id"), msgspec.json.decode(fields["data"])))
    return found


async def test_event_stream_snapshot_then_changes_until_terminal(
    client: AsyncTestClient, settings: Settings
) -> None:
    video = await _create(client)
    finisher = in_another_process_soon(settings, lambda: video["id"], delay=2.0)
    response = await client.get(f"/v1/videos/{video['id']}/events", headers=CLIENT)
    finisher.join(10)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    statuses = [e["status"] for _, e in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "in_progress" in statuses
    ids = [int(i) for i, _ in events]
    assert ids == sorted(set(ids)) and ids == [e["seq"] for _, e in events]

    # Resuming after the second event replays only what came later.
    resumed = await client.get(
        f"/v1/videos/{video['id']}/events", headers={**CLIENT, "Last-Event-ID": str(ids[1])}
    )
    assert [int(i) for i, _ in _events(resumed.text)] == [ids[-1]]


async def test_an_idle_event_stream_sends_keep_alive_comments_between_events(settings: Settings) -> None:
    quick = msgspec.structs.replace(settings, sse_keepalive_s=0.2)
    async with AsyncTestClient(app=create_app(quick)) as client:
        video = await _create(client)
        finisher = in_another_process_soon(settings, lambda: video["id"], delay=1.5)
        response = await client.get(f"/v1/videos/{video['id']}/events", headers=CLIENT)
        finisher.join(10)
    blocks = [block for block in response.text.split("\r\n\r\n") if block]
    # The snapshot, comments while nothing happens, then the changes; every block one whole SSE message.
    assert blocks[0].startswith("id: ") and '"status":"queued"' in blocks[0]
    quiet = [block for block in blocks if block.startswith(":")]
    assert len(quiet) >= 3 and set(quiet) == {": keep-alive"}
    assert blocks[1] == ": keep-alive"
    statuses = [e["status"] for _, e in _events(response.text)]
    assert statuses[0] == "queued" and statuses[-1] == "completed"


async def test_async_mode_false_holds_the_create_until_the_end(
    client: AsyncTestClient, settings: Settings
) -> None:
    marker = f"held {uuid.uuid4()}"

    def newest_held() -> str | None:
        async def find() -> str | None:
            engine = create_engine(settings, pool_size=1)
            try:
                async with create_sessionmaker(engine)() as session:
                    result = await session.execute(sa.select(Job.id).where(Job.prompt == marker))
                    return result.scalars().first()
            finally:
                await engine.dispose()

        return asyncio.run(find())

    finisher = in_another_process_soon(settings, newest_held)
    held = await _create(client, prompt=marker, async_mode=False)
    finisher.join(10)
    assert held["status"] == "completed" and held["data"][0]["url"]


async def test_async_mode_false_gives_up_after_the_bound(settings: Settings) -> None:
    quick = msgspec.structs.replace(settings, sync_wait_s=0.5)
    async with AsyncTestClient(app=create_app(quick)) as test_client:
        held = await _create(test_client, prompt="nobody finishes me", async_mode="false")
    assert held["status"] == "queued"


async def test_many_waits_at_once_on_a_fresh_process_all_see_their_ends(settings: Settings) -> None:
    """The first subscriptions of a new API process arrive together; none may miss its events."""
    async with AsyncTestClient(app=create_app(settings)) as fresh:
        videos = [await _create(fresh, prompt=f"together {i}") for i in range(5)]
        ids = [v["id"] for v in videos]
        finisher = in_another_process_soon(settings, lambda: ids, delay=1.0)
        channels = fresh.app.plugins.get(ChannelsPlugin)
        resources = fresh.app.state.services

        async def wait_all() -> list:
            # In the app's own event loop, as concurrent requests would be.
            return await asyncio.gather(*(wait_until_done(channels, resources, i, 15) for i in ids))

        ends = fresh.blocking_portal.call(wait_all)
        finisher.join(10)
    assert [end.status if end else None for end in ends] == ["completed"] * 5
