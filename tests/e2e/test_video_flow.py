"""A video from request to download, through the real processes, with the official SDK."""

from __future__ import annotations

import asyncio
import hashlib
import time

import asyncpg
import httpx
import msgspec
import openai
import pytest
import redis

from shared.events import decode as decode_event
from tests import strict
from tests.e2e.conftest import job_row, sdk
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

ORDER = {"queued": 0, "in_progress": 1, "completed": 2, "failed": 2}


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("flow", extra_env={"DRAFT_GRACE_S": "4"})
    stack.add_account(plan="chatgpt_pro")
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


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


def test_accounts_are_learned_encrypted_and_masked(stack: Stack) -> None:
    stack.sim("POST", "/faults", json={"fault": "http_500", "route": "nf_check", "count": 1})
    added = stack.add_account(plan="chatgpt_pro", quota=42, email="learned@example.com")
    token, account = added["sim"]["access_token"], added["gateway"]
    # From the JWT's claims and from /me and subscriptions; the failed nf/check is recorded, not fatal.
    assert account["email"] == "learned@example.com" and isinstance(account["expires_at"], int)
    assert account["plan_type"] == "chatgpt_pro"
    assert account["check_errors"] == {"nf_check": "server_error"} and account["quota_remaining"] is None
    assert account["token"] != token and token not in str(account) and "…" in account["token"]

    listed = stack.http.get(
        f"{stack.api_url}/api/tokens", headers={"Authorization": f"Bearer {stack.admin_key}"}
    )
    assert token not in listed.text and added["sim"]["refresh_token"] not in listed.text
    again = stack.http.post(
        f"{stack.api_url}/api/tokens",
        json={"token": token},
        headers={"Authorization": f"Bearer {stack.admin_key}"},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_token"

    async def stored() -> str:
        url = stack.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(url)
        try:
            return str(await connection.fetch("SELECT * FROM accounts"))
        finally:
            await connection.close()

    assert token not in asyncio.run(stored())  # encrypted at rest


def test_progress_events_on_the_job_channel(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    pubsub = client.pubsub()
    pubsub.psubscribe(f"{stack.env['REDIS_PREFIX']}job:*")
    pubsub.get_message(timeout=1)  # the subscription confirmation
    video_id = stack.create_video(prompt="watch me progress")["id"]
    events = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (events and events[-1].terminal):
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "pmessage":
            event = decode_event(message["data"])
            if event.job_id == video_id:
                events.append(event)
    pubsub.close()
    client.close()
    assert events and events[-1].status == "completed" and events[-1].progress == 100
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), seqs  # monotonic, no duplicates
    assert [e.progress for e in events] == sorted(e.progress for e in events)
    assert {"in_progress", "completed"} <= {e.status for e in events}
    # Polls reported the upstream's progress in between, not only the start and the download.
    assert [e for e in events if 1 < e.progress < 99], events  # 99 is downloading


def test_drafts_that_arrive_late_or_never(stack: Stack) -> None:
    late = stack.create_video(prompt="draft without a url at first [sim:nourl]")["id"]
    lost = stack.create_video(prompt="gone without a trace [sim:lost]")["id"]
    assert stack.wait_video(late)["status"] == "completed"
    failed = stack.wait_video(lost)
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_lost"


def test_watermark_free_from_the_post_detail_when_no_parser_is_set(
    stack: Stack, client: openai.OpenAI
) -> None:
    video = stack.create_video(prompt="clean from the post detail", watermark=False)
    assert stack.wait_video(video["id"])["status"] == "completed"
    content = client.videos.download_content(video["id"]).read()
    task = stack.sim("GET", f"/tasks/{job_row(stack, video['id'])['upstream_task_id']}")
    assert hashlib.sha256(content).hexdigest() == task["video_sha256"]
    assert stack.sim("GET", "/requests", params={"route": "post_get"})
    assert stack.sim("GET", "/requests", params={"route": "post_delete"})
