"""GET /metrics through the real app, Postgres and Redis: requests, jobs, the pool and open streams."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from threading import Thread

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.models import Job
from shared.settings import Settings
from tests.integration.conftest import ADMIN, CLIENT
from tests.integration.test_api_lifecycle import Worker

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: AsyncTestClient) -> Samples:
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def open_streams(stream: str) -> float:
    return REGISTRY.get_sample_value("sora_gateway_sse_streams_open", {"stream": stream}) or 0.0


def finish_while_open(
    settings: Settings, stream: str, job_id_of: Callable[[], str | None]
) -> tuple[Thread, list]:
    """From another thread (the open stream blocks the test's loop): notes the open-stream gauge while the
    stream is open, then completes the job so the stream ends."""
    seen: list[float] = []

    async def run() -> None:
        worker = Worker(settings)
        try:
            deadline = time.monotonic() + 10
            while (job_id := await asyncio.to_thread(job_id_of)) is None or open_streams(stream) < 1:
                assert time.monotonic() < deadline, "the stream never opened"
                await asyncio.sleep(0.05)
            seen.append(open_streams(stream))
            await worker.complete(job_id)
        finally:
            await worker.close()

    thread = Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    return thread, seen


def job_with_prompt(settings: Settings, prompt: str) -> Callable[[], str | None]:
    def find() -> str | None:
        async def query() -> str | None:
            engine = create_engine(settings, pool_size=1)
            try:
                async with create_sessionmaker(engine)() as session:
                    result = await session.execute(sa.select(Job.id).where(Job.prompt == prompt))
                    return result.scalars().first()
            finally:
                await engine.dispose()

        return asyncio.run(query())

    return find


async def test_metrics_need_the_admin_or_metrics_key_unless_public(settings: Settings) -> None:
    keyed = msgspec.structs.replace(settings, metrics_key="scraper-key")
    async with AsyncTestClient(app=create_app(keyed)) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=CLIENT)).status_code == 403
        assert (
            await client.get("/metrics", headers={"Authorization": "Bearer scraper-key"})
        ).status_code == 200
        assert (await client.get("/metrics", headers=ADMIN)).status_code == 200
    public = msgspec.structs.replace(settings, metrics_public=True)
    async with AsyncTestClient(app=create_app(public)) as client:
        assert (await client.get("/metrics")).status_code == 200


async def test_requests_jobs_pool_and_streams(client: AsyncTestClient, settings: Settings) -> None:
    before = await scrape(client)

    created = await client.post("/v1/videos", json={"prompt": "counted"}, headers=CLIENT)
    video_id = created.json()["id"]
    assert (await client.get(f"/v1/videos/{video_id}", headers=CLIENT)).status_code == 200
    missing = "video_" + uuid.uuid4().hex
    assert (await client.get(f"/v1/videos/{missing}", headers=CLIENT)).status_code == 404
    assert (await client.get(f"/no/such/{missing}", headers=CLIENT)).status_code == 404

    # An event stream, open while a "worker" finishes its job; then a chat stream the same way.
    finisher, seen_events = finish_while_open(settings, "video_events", lambda: video_id)
    events = await client.get(f"/v1/videos/{video_id}/events", headers=CLIENT)
    finisher.join(15)
    assert events.status_code == 200 and "completed" in events.text
    prompt = f"chat stream {uuid.uuid4()}"
    finisher, seen_chat = finish_while_open(settings, "chat", job_with_prompt(settings, prompt))
    chat = await client.post(
        "/v1/chat/completions",
        json={"model": "sora-2", "stream": True, "messages": [{"role": "user", "content": prompt}]},
        headers=CLIENT,
    )
    finisher.join(15)
    assert chat.status_code == 200 and "[DONE]" in chat.text
    assert seen_events == [1.0] and seen_chat == [1.0]

    after = await scrape(client)
    http = "sora_gateway_http_requests_total"
    grew = {
        (dict(labels)["method"], dict(labels)["route"], dict(labels)["status"])
        for (name, labels), n in after.items()
        if name == http and n > before.get((name, labels), 0)
    }
    assert {
        ("POST", "/v1/videos", "200"),
        ("GET", "/v1/videos/{video_id}", "200"),
        ("GET", "/v1/videos/{video_id}", "404"),
        ("GET", "/v1/videos/{video_id}/events", "200"),
        ("POST", "/v1/chat/completions", "200"),
        ("GET", "unmatched", "404"),
    } <= grew, grew
    duration = "sora_gateway_http_request_duration_seconds_count"
    assert value(after, duration, method="POST", route="/v1/videos") >= 1
    # Streams last as long as their job: counted, but kept out of the latency histogram. (Compared with
    # before: other tests in this process may have had non-stream answers, e.g. 404s, from that route.)
    events = {"method": "GET", "route": "/v1/videos/{video_id}/events"}
    assert value(after, duration, **events) == value(before, duration, **events)
    for name, labels in after:
        for label in dict(labels).values():
            assert not re.search(r"video_[0-9a-f]{8}|/no/such", label), (name, labels)

    # Jobs by state and kind, straight from Postgres: the completed ones moved over.
    jobs = "sora_gateway_jobs"
    assert (
        value(after, jobs, state="completed", kind="video")
        == value(before, jobs, state="completed", kind="video") + 2
    )
    assert value(after, jobs, state="queued", kind="image") == value(
        before, jobs, state="queued", kind="image"
    )
    # The pool: the chatgpt_pro account of these tests, active, offering its slots; nothing disabled by it.
    assert value(after, "sora_gateway_accounts", status="active") >= 1
    disabled = {"status": "disabled"}
    assert value(after, "sora_gateway_accounts", **disabled) == value(
        before, "sora_gateway_accounts", **disabled
    )
    assert value(after, "sora_gateway_pool_slots_limit", kind="video") >= 3
    assert ("sora_gateway_pool_slots_in_use", frozenset({("kind", "video")})) in after
    # Both streams closed again.
    assert value(after, "sora_gateway_sse_streams_open", stream="video_events") == 0
    assert value(after, "sora_gateway_sse_streams_open", stream="chat") == 0


async def test_a_new_job_shows_up_as_queued(client: AsyncTestClient) -> None:
    before = await scrape(client)
    created = await client.post("/v1/videos", json={"prompt": "one more in the queue"}, headers=CLIENT)
    assert created.status_code == 200
    after = await scrape(client)
    queued = {"state": "queued", "kind": "video"}
    assert value(after, "sora_gateway_jobs", **queued) == value(before, "sora_gateway_jobs", **queued) + 1
