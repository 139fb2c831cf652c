"""The Celery app (configuration only) and the ways anything enqueues work: ``Enqueuer`` sends one
message, ``TaskMessages`` many of one task in one Redis round trip.

Messages carry a job or account id and nothing else; the result backend is
off, because Postgres holds every outcome.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec
from celery import Celery
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu import Connection, Exchange, Queue
from kombu.utils.uuid import uuid
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared import names
from shared.settings import Settings

ROUTES = {
    names.TASK_VIDEO_SUBMIT: names.QUEUE_SUBMIT,
    names.TASK_VIDEO_FINALIZE: names.QUEUE_FINALIZE,
    names.TASK_POLL_ACCOUNTS: names.QUEUE_POLL,
    names.TASK_POLL_ACCOUNT: names.QUEUE_POLL,
    names.TASK_POLL_DRAFTS: names.QUEUE_FINALIZE,
    names.TASK_POLL_TICK: names.QUEUE_MAINTENANCE,
    names.TASK_DISPATCH: names.QUEUE_MAINTENANCE,
    names.TASK_SWEEP: names.QUEUE_MAINTENANCE,
    names.TASK_ACCOUNTS_MAINTAIN: names.QUEUE_MAINTENANCE,
    names.TASK_ACCOUNT_REFRESH: names.QUEUE_MAINTENANCE,
    names.TASK_MEDIA_EXPIRE: names.QUEUE_MAINTENANCE,
}


def create_celery(settings: Settings, *, include: tuple[str, ...] = ()) -> Celery:
    app = Celery("sora_gateway", broker=settings.redis_url, include=list(include))
    tick = timedelta(seconds=settings.poll_interval_s)
    sweep = timedelta(seconds=settings.sweep_interval_s)
    accounts = timedelta(seconds=settings.account_check_interval_s)
    media_expire = timedelta(seconds=settings.media_expire_interval_s)
    app.conf.update(
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "global_keyprefix": settings.redis_prefix,
            # Unacked messages come back after this long; resumable tasks make that safe.
            "visibility_timeout": 600,
            # The queues in names.ALL_QUEUES order, strictly, not round robin.
            "queue_order_strategy": "priority",
        },
        # Each queue its own direct exchange and key, so a message can only ever land in one queue.
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in names.ALL_QUEUES],
        task_default_queue=names.QUEUE_MAINTENANCE,
        task_routes={name: {"queue": queue, "routing_key": queue} for name, queue in ROUTES.items()},
        task_soft_time_limit=300,
        task_time_limit=360,
        # SIGTERM (remapped by `python -m worker`): finish within this window, then hand the rest back.
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_timeout_s,
        worker_enable_soft_shutdown_on_idle=settings.worker_soft_shutdown_on_idle,
        beat_schedule_filename=settings.beat_schedule_file,
        beat_schedule={
            # Ticks expire quickly: a backlog of stale ticks after an outage is worth nothing.
            "poll-tick": {
                "task": names.TASK_POLL_TICK,
                "schedule": tick,
                "options": {"expires": 10 * tick.total_seconds()},
            },
            "dispatch": {
                "task": names.TASK_DISPATCH,
                "schedule": tick,
                "options": {"expires": 10 * tick.total_seconds()},
            },
            "sweep": {
                "task": names.TASK_SWEEP,
                "schedule": sweep,
                "options": {"expires": 10 * sweep.total_seconds()},
            },
            "accounts": {
                "task": names.TASK_ACCOUNTS_MAINTAIN,
                "schedule": accounts,
                "options": {"expires": accounts.total_seconds()},
            },
            "media-expire": {
                "task": names.TASK_MEDIA_EXPIRE,
                "schedule": media_expire,
                "options": {"expires": media_expire.total_seconds()},
            },
        },
    )
    return app


class Enqueuer:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def _send(
        self, name: str, *args: str | int | list[int], countdown: float | None = None, retries: int = 0
    ) -> None:
        self._app.send_task(name, args=list(args), queue=ROUTES[name], countdown=countdown, retries=retries)

    def submit(self, job_id: str, countdown: float | None = None) -> None:
        self._send(names.TASK_VIDEO_SUBMIT, job_id, countdown=countdown)

    def finalize(self, job_id: str, countdown: float | None = None, retries: int = 0) -> None:
        """``retries``: the tries already made (the task's ``request.retries``)."""
        self._send(names.TASK_VIDEO_FINALIZE, job_id, countdown=countdown, retries=retries)

    def recheck_drafts(self, account_ids: list[int], left: int, countdown: float) -> None:
        self._send(names.TASK_POLL_DRAFTS, account_ids, left, countdown=countdown)

    def refresh_account(self, account_id: int) -> None:
        self._send(names.TASK_ACCOUNT_REFRESH, account_id)


# A task's one argument: a job or account id, or a list of them (a poll's accounts).
Argument = str | int | list[int]


class TaskMessages:
    """Messages of one task for many ids (jobs, accounts), for one Redis command instead of one publish each.

    Each message is what ``send_task`` sends for the id, task-sent event included (Flower shows the task
    as soon as it is queued). Celery builds the task message (``as_task_v2``); only the last step, the
    Redis transport's envelope, is written here. kombu's own publish costs 0.6 to 1.2 ms of CPU a message
    (it builds a new Redis client for each), more than everything else an accepted create costs, and a poll
    tick over 1,000 busy accounts sent 1,000; here a message costs tens of microseconds.
    ``tests/integration/test_queue.py`` holds the result against what kombu itself puts on the queue, so a
    Celery or kombu upgrade that changes the format fails there.
    """

    def __init__(self, app: Celery, task: str) -> None:
        self._app = app
        self._task = task
        self._queue = ROUTES[task]
        self._routes: tuple[str, str] | None = None
        self._hostname = anon_nodename()
        self._pid = os.getpid()

    def routes(self) -> tuple[str, str]:
        """The Redis list the task's queue is and the channel task-sent events go to, named as kombu's Redis
        transport names them (global key prefix, priority 0, database number, fanout prefix), from the
        settings alone: nothing connects (``tests/integration/test_queue.py`` checks them against kombu)."""
        if self._routes is None:
            conf = self._app.conf
            prefix = (conf.broker_transport_options or {}).get("global_keyprefix", "")
            # Connection() only parses the URL; the database is its virtual host, as for kombu.
            virtual_host = Connection(conf.broker_write_url or conf.broker_url).virtual_host or "/"
            database = int(virtual_host.strip("/") or 0)
            self._routes = (
                prefix + self._queue,
                f"{prefix}/{database}.{conf.event_exchange}/task.sent",
            )
        return self._routes

    @staticmethod
    def argument_of(raw: bytes) -> str | int | None:
        """The id a message carries (None if it is not one of ours)."""
        try:
            body = msgspec.json.decode(base64.b64decode(msgspec.json.decode(raw)["body"]))
            argument = body[0][0]
        except (msgspec.DecodeError, ValueError, TypeError, KeyError, IndexError):
            return None
        return argument if isinstance(argument, str | int) else None

    async def oldest_waiting(self, redis: Redis) -> str | int | None:
        """The id of the oldest message still waiting on the task's queue (None when none waits)."""
        queue_key, _ = self.routes()
        raw = await redis.lindex(queue_key, -1)  # LPUSH adds at the head: the tail is the oldest
        return None if raw is None else self.argument_of(raw)

    def add_to(self, pipe: Pipeline, arguments: Sequence[Argument]) -> None:
        """Adds the messages for ``arguments`` (one task each, in order) and their events to ``pipe``."""
        if not arguments:
            return
        queue_key, topic = self.routes()
        messages, sent = self.build(arguments)
        pipe.lpush(queue_key, *messages)
        for event in sent:
            pipe.publish(topic, event)

    async def send(self, redis: Redis, arguments: Sequence[Argument]) -> None:
        """One task for each of ``arguments``, in one round trip."""
        if arguments:
            async with redis.pipeline(transaction=False) as pipe:
                self.add_to(pipe, arguments)
                await pipe.execute()

    @property
    def events(self) -> bool:
        return bool(self._app.conf.task_send_sent_event)

    def build(self, arguments: Sequence[Argument]) -> tuple[list[bytes], list[bytes]]:
        """Messages for the task's queue (for ``LPUSH``, oldest first) and their task-sent events."""
        amqp = self._app.amqp
        events = self.events
        messages: list[bytes] = []
        sent: list[bytes] = []
        for argument in arguments:
            task_id = uuid()
            args = [argument]
            task = amqp.as_task_v2(
                task_id,
                self._task,
                args=args,
                argsrepr=repr(args),
                kwargsrepr="{}",
                reply_to=self._app.thread_oid,
                ignore_result=None,
                create_sent_event=events,
                origin=self._hostname,
            )
            messages.append(
                self._envelope(
                    task.body,
                    task.headers,
                    {**task.properties, "delivery_mode": 2},
                    exchange="",
                    routing_key=self._queue,
                )
            )
            if task.sent_event is not None:
                event = Event(
                    "task-sent",
                    hostname=self._hostname,
                    utcoffset=utcoffset(),
                    pid=self._pid,
                    clock=self._app.clock.forward(),
                    **task.sent_event,
                    queue=self._queue,
                    exchange="",
                    routing_key=self._queue,
                )
                sent.append(
                    self._envelope(
                        event,
                        {"hostname": self._hostname},
                        {"delivery_mode": 1},
                        exchange=self._app.conf.event_exchange,
                        routing_key="task.sent",
                    )
                )
        return messages, sent

    @staticmethod
    def _envelope(
        body: Any, headers: dict[str, Any], properties: dict[str, Any], *, exchange: str, routing_key: str
    ) -> bytes:
        return msgspec.json.encode(
            {
                "body": base64.b64encode(msgspec.json.encode(body)).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": {
                    **properties,
                    "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": uuid(),
                },
            }
        )
