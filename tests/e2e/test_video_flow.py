"""A video from request to download, through the real processes, with the official SDK."""

from __future__ import annotations

import hashlib
import time

import httpx
import msgspec
import openai
import pytest

from tests import strict
from tests.e2e.conftest import job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

ORDER = {"queued": 0, "in_progress": 1, "completed": 2, "failed": 2}


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("flow")
    stack.add_account(plan="chatgpt_pro")
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key=stack.api_key, max_retries=0)


def test_sdk_create_and_poll_then_download(stack: Stack, client: openai.OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="sora-2", prompt="a red fox running through fresh snow", seconds="10"
    )
    assert video.status == "completed", video
    assert (video.progress, video.seconds, video.size) == (100, "10", "720x1280")
    assert isinstance(video.completed_at, int) and isinstance(video.expires_at, int)

    content = client.videos.download_content(video.id).read()
    task_id = job_row(stack, video.id)["upstream_task_id"]
    # downloadable_url is the watermarked file; the watermark-free flow is a separate option.
    expected = stack.sim("GET", f"/tasks/{task_id}")["video_wm_sha256"]
    assert hashlib.sha256(content).hexdigest() == expected
    assert content[4:8] == b"ftyp"  # an MP4, as the simulator made it

    thumbnail = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"


def test_every_body_is_strict_and_status_only_moves_forward(stack: Stack) -> None:
    created = stack.create_video(prompt="a lighthouse in a storm", model="sora-video-landscape-15s")
    seen = [strict.video(msgspec.json.encode(created))]
    deadline = time.monotonic() + 60
    while seen[-1].status not in ("completed", "failed"):
        assert time.monotonic() < deadline, f"stuck at {seen[-1].status}"
        response = stack.http.get(
            f"{stack.api_url}/v1/videos/{created['id']}", headers=stack.client_headers()
        )
        seen.append(strict.video(response.content))
        assert "code" not in response.json()
        time.sleep(0.1)
    assert seen[-1].status == "completed"
    assert (seen[-1].seconds, seen[-1].size) == ("15", "1280x720")
    statuses = [v.status for v in seen]
    assert "in_progress" in statuses
    assert [ORDER[s] for s in statuses] == sorted(ORDER[s] for s in statuses)
    progress = [v.progress for v in seen]
    assert progress == sorted(progress)

    # The download link in data[] works without a key (chat clients and browsers open it as is).
    link = seen[-1].data[0].url  # type: ignore[index]
    download = httpx.get(link)
    assert download.status_code == 200 and download.content[4:8] == b"ftyp"

    # The native task view agrees.
    task = stack.http.get(
        f"{stack.api_url}/v1/videos/tasks/{created['id']}", headers=stack.client_headers()
    ).json()
    assert task["state"] == "succeeded" and task["progress"] == 100 and task["data"]["videos"][0]["url"]


def test_rejected_prompt_ends_failed_with_a_string_code(stack: Stack, client: openai.OpenAI) -> None:
    video = client.videos.create_and_poll(model="sora-2", prompt="something forbidden [sim:violation]")
    assert video.status == "failed"
    assert video.error is not None and isinstance(video.error.code, str)
    assert video.error.code == "content_filter"
    assert video.error.message == "The prompt or input was rejected by the content filter"
    with pytest.raises(openai.ConflictError):
        client.videos.download_content(video.id).read()


def test_upstream_failure_ends_failed(stack: Stack) -> None:
    created = stack.create_video(prompt="this one breaks upstream [sim:fail]")
    video = stack.wait_video(created["id"])
    assert video["status"] == "failed" and video["error"]["code"] == "generation_failed"


def test_polls_are_per_account_and_carry_no_sentinel(stack: Stack) -> None:
    since = stack.sim("GET", "/stats")["requests_by_route"].get("pending", 0)
    started = time.monotonic()
    ids = [stack.create_video(prompt=f"three at once {i}")["id"] for i in range(3)]
    for video_id in ids:
        assert stack.wait_video(video_id)["status"] == "completed"
    elapsed = time.monotonic() - started
    polls = stack.sim("GET", "/stats")["requests_by_route"]["pending"] - since
    ticks = elapsed / float(stack.env["POLL_INTERVAL_S"])
    # One pending request per account per tick covers all three jobs (not one per job).
    assert polls <= ticks + 3, (polls, ticks)
    log = stack.sim("GET", "/requests", params={"route": "pending"})
    assert log and all("openai-sentinel-token" not in {k.lower() for k in entry["headers"]} for entry in log)
