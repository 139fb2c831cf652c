"""Messages on the real broker: each task lands in exactly its own queue, carrying only an id."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from dev import procs
from shared import names
from shared.queue import Enqueuer, TaskMessages, create_celery
from shared.settings import Settings
from tests.infra import stop_processes
from worker import celery_fixes

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Broker:
    prefix: str
    app: Celery
    client: redis.Redis


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    """A Celery app on a key prefix of its own and a Redis client; what a test leaves there goes after it."""
    prefix = f"{settings.redis_prefix}{secrets.token_hex(3)}:"
    app = create_celery(Settings(redis_url=settings.redis_url, redis_prefix=prefix))
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield Broker(prefix, app, client)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
        app.close()


def test_each_task_lands_in_its_own_queue_only(broker: Broker) -> None:
    prefix, app, client = broker.prefix, broker.app, broker.client
    enqueue = Enqueuer(app)
    enqueue.submit("video_abc")
    enqueue.finalize("video_def")
    polls = TaskMessages(app, names.TASK_POLL_ACCOUNTS)
    client.lpush(polls.routes()[0], *polls.build([[7, 8]])[0])
    lengths = {queue: client.llen(f"{prefix}{queue}") for queue in names.ALL_QUEUES}
    assert lengths == {"submit": 1, "finalize": 1, "poll": 1, "maintenance": 0}

    message = json.loads(client.lindex(f"{prefix}submit", 0))
    assert message["headers"]["task"] == "videos.submit"
    assert json.loads(base64.b64decode(message["body"]))[0] == ["video_abc"]


def _shape(raw: bytes, job_id: str) -> dict:
    """A message (body decoded) with what differs from one send to the next (task ids, tags, times,
    clocks and the job id) blanked."""
    varying = {"id", "root_id", "correlation_id", "delivery_tag", "uuid", "timestamp", "clock", "pid"}

    def blank(value):
        if isinstance(value, dict):
            return {key: "…" if key in varying else blank(item) for key, item in value.items()}
        if isinstance(value, list):
            return [blank(item) for item in value]
        return value

    message = json.loads(raw)
    body = json.loads(base64.b64decode(message["body"]))
    return json.loads(json.dumps(blank({**message, "body": body})).replace(job_id, "…"))


def test_batched_submit_messages_are_what_celery_sends(broker: Broker) -> None:
    """The API's batched submit messages (one LPUSH for many jobs) against kombu's own publish: the same
    envelope, headers, body and task-sent event, on the same list and channel."""
    prefix, app, client = broker.prefix, broker.app, broker.client
    events = client.pubsub()
    events.psubscribe(f"{prefix}*")
    try:
        assert events.get_message(timeout=1)["type"] == "psubscribe"
        Enqueuer(app).submit("video_kombu")
        theirs = client.rpop(f"{prefix}submit")
        their_event = events.get_message(timeout=2)

        batch = TaskMessages(app, names.TASK_VIDEO_SUBMIT)
        queue_key, topic = batch.routes()
        messages, sent = batch.build(["video_ours", "video_second"])
        assert (queue_key, topic) == (f"{prefix}submit", their_event["channel"].decode())
        assert len(messages) == len(sent) == 2
        # The envelope kombu writes, and the host and process fields it fills in, are the same.
        assert _shape(messages[0], "video_ours") == _shape(theirs, "video_kombu")
        assert _shape(sent[0], "video_ours") == _shape(their_event["data"], "video_kombu")
        ours = json.loads(messages[0])
        event_body = json.loads(base64.b64decode(json.loads(sent[0])["body"]))
        assert event_body["uuid"] == ours["headers"]["id"] and event_body["type"] == "task-sent"
        # Every message its own task id and delivery tag.
        second = json.loads(messages[1])
        assert second["headers"]["id"] != ours["headers"]["id"]
        assert second["properties"]["delivery_tag"] != ours["properties"]["delivery_tag"]
        assert json.loads(base64.b64decode(second["body"]))[0] == ["video_second"]
    finally:
        events.close()


def test_kombu_reuses_one_redis_client_per_channel_and_still_delivers(broker: Broker) -> None:
    """The worker's fix for kombu building a redis-py client per command: one client per channel and
    connection pool, and every message and task-sent event still arrives, also after the pool changes."""
    celery_fixes.reuse_the_redis_client()
    app, client = broker.app, broker.client
    queue, events_channel = TaskMessages(app, names.TASK_VIDEO_SUBMIT).routes()
    events = client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(events_channel)
    try:
        enqueue = Enqueuer(app)
        enqueue.submit("video_a")
        # One send at a time: the producer pool hands the same producer, and channel, back each time.
        with app.producer_or_acquire() as producer:
            channel = producer.channel
        reused = channel.__dict__["_reused_client"]
        enqueue.submit("video_b")
        assert channel.__dict__["_reused_client"] is reused
        # A new pool (kombu makes one after a lost connection) gets a client of its own.
        channel._pool = None
        enqueue.submit("video_c")
        renewed = channel.__dict__["_reused_client"]
        assert renewed is not reused and renewed.connection_pool is channel.pool

        sent = [TaskMessages.argument_of(raw) for raw in reversed(client.lrange(queue, 0, -1))]
        assert sent == ["video_a", "video_b", "video_c"]
        received = []
        deadline = time.monotonic() + 5
        while len(received) < 3 and time.monotonic() < deadline:
            message = events.get_message(timeout=0.5)
            if message is not None:
                received.append(json.loads(message["data"])["body"])
        assert len(received) == 3
    finally:
        events.close()


def test_a_worker_finishes_started_work_before_it_starts_new_work(broker: Broker, settings: Settings) -> None:
    """Creates wait while a finalize and a poll go first: a wave of completions is not queued behind them."""
    client = broker.client
    waiting = [
        (names.TASK_VIDEO_SUBMIT, [f"video_{i:032x}" for i in range(5)]),
        (names.TASK_POLL_ACCOUNTS, [[987654]]),
        (names.TASK_VIDEO_FINALIZE, ["video_" + "f" * 32]),
    ]
    for task, arguments in waiting:  # oldest first: the creates were there long before the others
        messages = TaskMessages(broker.app, task)
        client.lpush(messages.routes()[0], *messages.build(arguments)[0])
    events = client.pubsub()
    events.psubscribe(f"{broker.prefix}*celeryev*")
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": broker.prefix,
        "DATABASE_URL": settings.database_url,
        "WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "1",
    }
    # One process, one message at a time: the order it takes them in is the order they run in.
    worker = subprocess.Popen(
        [*procs.command("worker"), "--concurrency=1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    received: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < 7 and time.monotonic() < deadline:
            message = events.get_message(timeout=1)
            if message and message["type"] == "pmessage":
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                for event in body if isinstance(body, list) else [body]:
                    if event.get("type") == "task-received":
                        received.append(event["name"])
    finally:
        stop_processes(worker, timeout=20)
        events.close()
    assert received == [names.TASK_VIDEO_FINALIZE, names.TASK_POLL_ACCOUNTS, *[names.TASK_VIDEO_SUBMIT] * 5]
