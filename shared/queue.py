"""The Celery app (configuration only) and the one way anything enqueues work.

Messages carry a job or account id and nothing else; the result backend is
off, because Postgres holds every outcome.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from kombu import Exchange, Queue

from shared import names
from shared.settings import Settings

ROUTES = {
    names.TASK_VIDEO_SUBMIT: names.QUEUE_SUBMIT,
    names.TASK_VIDEO_FINALIZE: names.QUEUE_FINALIZE,
    names.TASK_POLL_ACCOUNT: names.QUEUE_POLL,
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

    def _send(self, name: str, arg: str | int, countdown: float | None = None) -> None:
        self._app.send_task(name, args=[arg], queue=ROUTES[name], countdown=countdown)

    def submit(self, job_id: str, countdown: float | None = None) -> None:
        self._send(names.TASK_VIDEO_SUBMIT, job_id, countdown)

    def finalize(self, job_id: str, countdown: float | None = None) -> None:
        self._send(names.TASK_VIDEO_FINALIZE, job_id, countdown)

    def poll_account(self, account_id: int) -> None:
        self._send(names.TASK_POLL_ACCOUNT, account_id)

    def refresh_account(self, account_id: int) -> None:
        self._send(names.TASK_ACCOUNT_REFRESH, account_id)
