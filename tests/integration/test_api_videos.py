"""The video routes through the real app, Postgres and Redis (no worker: jobs stay queued here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from shared.db import create_engine, create_sessionmaker
from shared.models import Job, JobState
from shared.secrets import key_fingerprint
from shared.settings import Settings
from shared.storage import LocalStorage
from shared.timeutil import utcnow
from tests import strict
from tests.integration.conftest import ADMIN, CLIENT, OTHER_CLIENT, set_pool_plan

pytestmark = pytest.mark.anyio


async def _create(client: AsyncTestClient, **body) -> strict.StrictVideo:
    response = await client.post("/v1/videos", json={"prompt": "a fox in the snow", **body}, headers=CLIENT)
    assert response.status_code == 200, response.text
    return strict.video(response.content)


async def test_create_answers_a_queued_video_at_once(client: AsyncTestClient, settings: Settings) -> None:
    video = await _create(client)
    assert (video.status, video.progress, video.seconds, video.size, video.model) == (
        "queued",
        0,
        "10",
        "720x1280",
        "sora-2",
    )
    assert video.prompt == "a fox in the snow"
    assert video.data is None or video.data is strict.msgspec.UNSET

    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        job = await session.get(Job, video.id)
    await engine.dispose()
    assert job is not None and job.state == JobState.QUEUED and job.enqueued_at is not None
    assert job.params["upstream_model"] == "sy_8" and job.params["n_frames"] == 300


async def test_multipart_like_the_openai_sdk(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/videos",
        files={
            "prompt": (None, "a cat"),
            "model": (None, "sora-2"),
            "seconds": (None, "12"),
            "size": (None, "1280x720"),
        },
        headers=CLIENT,
    )
    assert response.status_code == 200, response.text
    video = strict.video(response.content)
    assert (video.seconds, video.size) == ("15", "1280x720")


@pytest.mark.parametrize(
    ("body", "seconds", "size"),
    [
        ({"seconds": 4}, "10", "720x1280"),
        ({"seconds": "8"}, "10", "720x1280"),
        ({"duration": 15, "orientation": "landscape"}, "15", "1280x720"),
        ({"model": "sora-video-landscape-15s"}, "15", "1280x720"),
        ({"model": "sora-2-pro", "size": "1792x1024"}, "10", "1792x1024"),
        ({"model": "sora2pro-portrait-25s"}, "25", "720x1280"),
        ({"unknown_field": {"nested": True}, "style_id": "anime"}, "10", "720x1280"),
    ],
)
async def test_request_dialects(client: AsyncTestClient, body: dict, seconds: str, size: str) -> None:
    video = await _create(client, **body)
    assert (video.seconds, video.size) == (seconds, size)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "gpt-4o"}, "model", "model_not_found"),
        ({"seconds": 7}, "seconds", "invalid_value"),
        ({"size": "1792x1024"}, "size", "invalid_value"),
        ({"prompt": "   "}, "prompt", "missing_required_parameter"),
        ({"style_id": "baroque"}, "style_id", "invalid_value"),
        ({"model": "sora-image"}, "model", "invalid_value"),
        ({"input_reference": "http://127.0.0.1:8000/cat.png"}, "input_reference", "url_not_allowed"),
        ({"image": "http://169.254.169.254/latest/meta-data/"}, "image", "url_not_allowed"),
        ({"input_image": "http://[::ffff:10.0.0.1]/x.png"}, "input_image", "url_not_allowed"),
        ({"images": ["http://localhost/x.png"]}, "images", "url_not_allowed"),
        (
            {"input_reference": {"image_url": "http://192.168.1.1/x.png"}},
            "input_reference",
            "url_not_allowed",
        ),
        ({"input_reference": "this is not an image"}, "input_reference", "invalid_image"),
        (
            {"character_url": "https://example.com/c.mp4", "character_timestamps": "2,9"},
            "character_timestamps",
            "invalid_value",
        ),
        ({"character_url": "http://10.0.0.1/c.mp4"}, "character_url", "url_not_allowed"),
        ({"character_url": "not a video"}, "character_url", "invalid_video"),
        ({"character_from_task": "gen_unknown1"}, "character_from_task", "generation_not_found"),
        ({"model": "avatar-create"}, "model", "invalid_value"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio", "invalid_value"),
        (
            {"model": "sora2-extension-10s", "prompt": "gen_unknown123 go on"},
            "prompt",
            "generation_not_found",
        ),
    ],
)
async def test_bad_input_is_a_clear_400(client: AsyncTestClient, body: dict, param: str, code: str) -> None:
    response = await client.post("/v1/videos", json={"prompt": "a fox", **body}, headers=CLIENT)
    assert response.status_code == 400, response.text
    error = strict.error(response.content)
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")


async def test_malformed_bodies(client: AsyncTestClient) -> None:
    for content in (b"{not json", b"[1, 2]", b""):
        response = await client.post(
            "/v1/videos", content=content, headers={**CLIENT, "content-type": "application/json"}
        )
        assert response.status_code == 400
        strict.error(response.content)


async def test_keys(client: AsyncTestClient) -> None:
    body = {"prompt": "a fox"}
    assert (await client.post("/v1/videos", json=body)).status_code == 401
    wrong = await client.post("/v1/videos", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and strict.error(wrong.content).type == "authentication_error"
    bare = await client.post("/v1/videos", json=body, headers={"Authorization": "sk-test-one"})
    assert bare.status_code == 200
    assert (await client.post("/v1/videos", json=body, headers=ADMIN)).status_code == 401
    forbidden = await client.get("/api/tokens", headers=CLIENT)
    assert forbidden.status_code == 403 and strict.error(forbidden.content).code == "forbidden"
    assert (await client.get("/api/tokens")).status_code == 401


async def test_a_wrong_key_is_refused_before_the_body_or_the_parameters_are_read(
    client: AsyncTestClient,
) -> None:
    malformed = {"Authorization": "Bearer nope", "content-type": "application/json"}
    for method, path in (
        ("POST", "/v1/videos"),
        ("POST", "/v1/videos/generations"),
        ("POST", "/v1/videos/video_nope/remix"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/characters"),
        ("GET", "/v1/videos?limit=many"),
        ("GET", "/v1/videos/tasks/task_nope"),
        ("GET", "/v1/characters?limit=many"),
        ("GET", "/v1/models"),
        ("GET", "/v1/feed?limit=many"),
    ):
        response = await client.request(method, path, content=b"{not json", headers=malformed)
        assert response.status_code == 401, (method, path, response.text)
        assert strict.error(response.content).type == "authentication_error"


async def test_retrieve_and_poll_header(client: AsyncTestClient) -> None:
    video = await _create(client)
    response = await client.get(f"/v1/videos/{video.id}", headers=CLIENT)
    assert response.status_code == 200
    assert strict.video(response.content).id == video.id
    assert int(response.headers["openai-poll-after-ms"]) > 0

    # Another client's key cannot see it; unknown ids are a 404 in the error shape.
    assert (await client.get(f"/v1/videos/{video.id}", headers=OTHER_CLIENT)).status_code == 404
    missing = await client.get("/v1/videos/video_" + "0" * 32, headers=CLIENT)
    assert missing.status_code == 404 and strict.error(missing.content).code == "not_found"

    task = (await client.get(f"/v1/videos/tasks/{video.id}", headers=CLIENT)).json()
    assert task["state"] == "queued" and task["progress"] == 0 and task["data"] is None
    assert task["kind"] == "video" and task["error"] is None and isinstance(task["updated_at"], int)

    not_ready = await client.get(f"/v1/videos/{video.id}/content", headers=CLIENT)
    assert not_ready.status_code == 409 and strict.error(not_ready.content).code == "video_not_ready"


async def test_idempotency_key_returns_the_same_job(client: AsyncTestClient) -> None:
    headers = {**CLIENT, "Idempotency-Key": "retry-me-1"}
    first = await client.post("/v1/videos", json={"prompt": "once"}, headers=headers)
    second = await client.post("/v1/videos", json={"prompt": "once"}, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    other_owner = await client.post(
        "/v1/videos", json={"prompt": "once"}, headers={**OTHER_CLIENT, "Idempotency-Key": "retry-me-1"}
    )
    assert other_owner.json()["id"] != first.json()["id"]


async def test_router_errors_use_the_error_shape(client: AsyncTestClient) -> None:
    not_found = await client.get("/v1/nothing-here", headers=CLIENT)
    assert not_found.status_code == 404
    strict.error(not_found.content)
    wrong_method = await client.put("/v1/videos", headers=CLIENT)
    assert wrong_method.status_code == 405
    assert strict.error(wrong_method.content).code == "method_not_allowed"
    bad_query = await client.get("/v1/videos?limit=1000", headers=CLIENT)
    assert bad_query.status_code == 400
    strict.error(bad_query.content)


async def test_list_pages_through_own_videos(client: AsyncTestClient) -> None:
    headers = {"Authorization": "Bearer sk-test-two"}
    ids = []
    for i in range(3):
        response = await client.post("/v1/videos", json={"prompt": f"list {i}"}, headers=headers)
        ids.append(response.json()["id"])
    first = (await client.get("/v1/videos?limit=2&order=asc", headers=headers)).json()
    assert first["object"] == "list" and first["has_more"] is True
    rest = (
        await client.get(f"/v1/videos?limit=100&order=asc&after={first['last_id']}", headers=headers)
    ).json()
    seen = [v["id"] for v in first["data"] + rest["data"]]
    assert [i for i in seen if i in ids] == ids and rest["has_more"] is False


async def test_models_and_health(client: AsyncTestClient) -> None:
    models = (await client.get("/v1/models", headers=CLIENT)).json()
    ids = {m["id"] for m in models["data"]}
    assert {"sora-2", "sora-2-pro", "sora-image"} <= ids
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in models["data"])
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["postgres"] == "ok" and ready.json()["redis"] == "ok"


async def _completed_job(settings: Settings, payload: bytes) -> str:
    """A finished job as the worker leaves it: row completed, media in storage."""
    engine = create_engine(settings)
    now = utcnow()
    job_id = "video_" + "ab" * 16
    await LocalStorage(settings.media_dir).write(f"videos/{job_id}/video.mp4", _once(payload))
    async with create_sessionmaker(engine)() as session:
        await session.execute(sa.delete(Job).where(Job.id == job_id))
        session.add(
            Job(
                id=job_id,
                kind="video",
                owner=key_fingerprint("sk-test-one"),
                state=JobState.COMPLETED,
                progress=100,
                model="sora-2",
                prompt="done",
                seconds=10,
                size="720x1280",
                media_key=f"videos/{job_id}/video.mp4",
                completed_at=now,
                expires_at=now + timedelta(hours=1),
                deadline_at=now + timedelta(hours=1),
            )
        )
        await session.commit()
    await engine.dispose()
    return job_id


async def _once(payload: bytes):
    yield payload


async def test_content_download_with_range_and_signed_link(
    client: AsyncTestClient, settings: Settings
) -> None:
    payload = bytes(range(256)) * 40
    job_id = await _completed_job(settings, payload)

    whole = await client.get(f"/v1/videos/{job_id}/content", headers=CLIENT)
    assert whole.status_code == 200 and whole.content == payload
    assert (
        whole.headers["content-length"] == str(len(payload)) and whole.headers["content-type"] == "video/mp4"
    )

    part = await client.get(f"/v1/videos/{job_id}/content", headers={**CLIENT, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == payload[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(payload)}"
    tail = await client.get(f"/v1/videos/{job_id}/content", headers={**CLIENT, "Range": "bytes=-10"})
    assert tail.content == payload[-10:]
    beyond = await client.get(f"/v1/videos/{job_id}/content", headers={**CLIENT, "Range": "bytes=999999-"})
    assert beyond.status_code == 416

    video = strict.video((await client.get(f"/v1/videos/{job_id}", headers=CLIENT)).content)
    assert (
        video.status == "completed"
        and "openai-poll-after-ms" not in (await client.get(f"/v1/videos/{job_id}", headers=CLIENT)).headers
    )
    link = video.data[0].url.removeprefix(settings.public_base_url)  # type: ignore[index]
    anonymous = await client.get(link)
    assert anonymous.status_code == 200 and anonymous.content == payload
    forged = await client.get(link[:-3] + "xyz")
    assert forged.status_code == 404
    no_thumb = await client.get(f"/v1/videos/{job_id}/content?variant=thumbnail", headers=CLIENT)
    assert no_thumb.status_code == 404


async def test_what_no_account_can_make_is_refused_at_once(
    client: AsyncTestClient, settings: Settings
) -> None:
    await set_pool_plan(settings, "chatgpt_plus", client)
    try:
        for body in ({"model": "sora-2-pro"}, {"seconds": 25}, {"model": "sora-2-pro", "size": "1024x1792"}):
            response = await client.post("/v1/videos", json={"prompt": "needs pro", **body}, headers=CLIENT)
            assert response.status_code == 400, body
            error = strict.error(response.content)
            assert error.code == "no_capable_account" and "quota" not in error.message.lower()
        assert (
            await client.post("/v1/videos", json={"prompt": "standard"}, headers=CLIENT)
        ).status_code == 200
    finally:
        await set_pool_plan(settings, "chatgpt_pro")
