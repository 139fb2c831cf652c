"""Chat completions through the real stack: streamed progress, results, failures and channel checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import openai
import pytest
import redis

from tests.e2e.conftest import sdk
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("chat")
    stack.add_account(plan="chatgpt_pro")
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


def _say(text: str) -> list[dict]:
    return [{"role": "system", "content": "ignored"}, {"role": "user", "content": text}]


def test_streamed_video_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="sora-2",
            messages=_say("a kite over the dunes"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    progress = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices]
    progress = [p for p in progress if p]
    assert progress[0]["status"] == "started" and progress[-1]["status"] == "completed"
    assert all({"stage", "status", "message", "timestamp"} <= set(p) for p in progress)
    assert {p["stage"] for p in progress} <= {"processing", "generation", "cache"}
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[-1] == 100
    task_id = progress[0]["details"]["task_id"]
    [result] = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert result.choices[0].finish_reason == "stop"
    assert (
        "<video" in result.choices[0].delta.content
        and f"/v1/videos/{task_id}/content" in result.choices[0].delta.content
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_streamed_image(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="sora-image", messages=_say("a red apple"), stream=True)
    )
    [result] = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert result.choices[0].delta.content.startswith("![Generated Image](")
    assert "/v1/images/img_" in result.choices[0].delta.content


def test_json_object_result_and_non_stream(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="sora-2", messages=_say("a still lake"), response_format={"type": "json_object"}
    )
    assert answer.object == "chat.completion" and answer.usage.total_tokens > 0
    result = json.loads(answer.choices[0].message.content)
    assert result["type"] == "video" and result["data"][0]["url"] == result["url"]
    assert httpx.get(result["url"]).content[4:8] == b"ftyp"


def test_streamed_failure_then_error_then_done(stack: Stack) -> None:
    with stack.http.stream(
        "POST",
        f"{stack.api_url}/v1/chat/completions",
        json={"model": "sora-2", "messages": _say("forbidden [sim:violation]"), "stream": True},
        headers=stack.client_headers(),
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [block for block in raw.split("\n\n") if block]
    for block in events:
        assert len(block.encode()) < 64 * 1024
        assert block.startswith(("data: ", ": keep-alive")) and "\n" not in block
    payloads = [block.removeprefix("data: ") for block in events if block.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["code"] == "content_filter"
    last_content = json.loads(payloads[-3])["choices"][0]
    assert last_content["finish_reason"] == "stop" and "content filter" in last_content["delta"]["content"]


def test_channel_check_answers_at_once_and_creates_nothing(stack: Stack) -> None:
    before = stack.sim("GET", "/stats")["creates_total"]
    response = stack.http.post(
        f"{stack.api_url}/v1/chat/completions",
        json={"model": "sora-2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
        headers=stack.client_headers(),
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "chat.completion" and isinstance(
        answer["choices"][0]["message"]["content"], str
    )
    assert stack.sim("GET", "/stats")["creates_total"] == before


def test_500_dropped_streams_leave_no_subscription_behind(stack: Stack) -> None:
    video = stack.create_video(prompt="never finishes [sim:stuck]")
    channel = f"{stack.env['REDIS_PREFIX']}job:{video['id']}"
    redis_client = redis.Redis.from_url(stack.env["REDIS_URL"])

    def pubsub_clients() -> int:
        # This stack's API relays only: other stacks may share the Redis server.
        relay = f"{stack.env['REDIS_PREFIX']}api-events"
        return sum(1 for client in redis_client.client_list(_type="pubsub") if client["name"] == relay)

    async def hold_streams(count: int) -> tuple[int, int, int]:
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(timeout=60, limits=limits) as http,
            contextlib.AsyncExitStack() as streams,
        ):

            async def open_one() -> None:
                response = await streams.enter_async_context(
                    http.stream(
                        "GET",
                        f"{stack.api_url}/v1/videos/{video['id']}/events",
                        headers=stack.client_headers(),
                    )
                )
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        return  # the snapshot arrived: this stream is live and subscribed

            await asyncio.gather(*(open_one() for _ in range(count)))
            [(_, subscribed)] = redis_client.pubsub_numsub(channel)
            return count, subscribed, pubsub_clients()

    opened, subscribed_while_open, clients_while_open = asyncio.run(hold_streams(500))
    assert opened == 500
    # One subscription on one shared connection, however many clients follow the job.
    assert subscribed_while_open == 1 and clients_while_open == 1

    deadline = time.monotonic() + 15
    while redis_client.pubsub_numsub(channel)[0][1] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert redis_client.pubsub_numsub(channel)[0][1] == 0  # every dropped stream cleaned up
    assert pubsub_clients() <= 1
    assert stack.get_video(video["id"])["status"] in ("queued", "in_progress")  # the job goes on
    redis_client.close()
