"""Messages on the real broker: each task lands in exactly its own queue, carrying only an id."""

from __future__ import annotations

import base64
import json
import secrets

import redis

from shared import names
from shared.queue import Enqueuer, create_celery
from shared.settings import Settings


def test_each_task_lands_in_its_own_queue_only(settings: Settings) -> None:
    prefix = f"{settings.redis_prefix}{secrets.token_hex(3)}:"
    app = create_celery(Settings(redis_url=settings.redis_url, redis_prefix=prefix))
    client = redis.Redis.from_url(settings.redis_url)
    try:
        enqueue = Enqueuer(app)
        enqueue.submit("video_abc")
        enqueue.finalize("video_def")
        enqueue.poll_account(7)
        lengths = {queue: client.llen(f"{prefix}{queue}") for queue in names.ALL_QUEUES}
        assert lengths == {"submit": 1, "finalize": 1, "poll": 1, "maintenance": 0}

        message = json.loads(client.lindex(f"{prefix}submit", 0))
        assert message["headers"]["task"] == "videos.submit"
        assert json.loads(base64.b64decode(message["body"]))[0] == ["video_abc"]
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
        app.close()
