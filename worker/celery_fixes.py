"""Workarounds for Celery and kombu bugs that break the worker's promises or waste its CPU, and why.

Applied by ``worker.main`` (so in the worker, beat and Flower processes); each checks that the code it
wraps is there and leaves everything else alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down
from celery.worker.consumer.consumer import Consumer
from kombu.message import Message
from kombu.transport.redis import Channel as RedisChannel

log = logging.getLogger(__name__)


def survive_broker_restart() -> None:
    """A worker must reconnect after its Redis broker restarts, not stop consuming for good.

    On a lost connection Celery 5.7 collects the broker connection (which drops its transport) and then
    closes it. With unacknowledged messages, which late acks always leave while a task runs, kombu's
    Redis channel tries to put them back on close, fails with ``AttributeError`` on the missing
    transport, and Celery logs "Unrecoverable error" and stops consuming. The messages could not be put
    back anyway (Redis is unreachable, or it lost them); Postgres and the sweeper resend what matters.
    This lets the consumer go on to reconnect.
    """
    original = getattr(Consumer, "on_connection_error_after_connected", None)
    if original is None or getattr(original, "_survives_broker_restart", False):
        return

    @functools.wraps(original)
    def on_connection_error_after_connected(self: Consumer, exc: BaseException) -> None:
        try:
            original(self, exc)
        except AttributeError:
            log.warning(
                "broker connection lost; its unacknowledged messages could not be restored", exc_info=True
            )

    on_connection_error_after_connected._survives_broker_restart = True  # type: ignore[attr-defined]
    Consumer.on_connection_error_after_connected = on_connection_error_after_connected  # type: ignore[method-assign]


def _connection_gone(message: Message) -> bool:
    transport = getattr(message.channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def settle_on_a_lost_connection() -> None:
    """Tasks that ran through a broker restart must not stop the worker when they end.

    Their messages came over the connection that was lost, and Celery acknowledges (or rejects) them on
    its channel, which has no transport any more: ``AttributeError``, "Unrecoverable error", and the
    worker stops consuming. Such a message went with that connection: there is nothing left to settle.
    """
    for name in ("ack_log_error", "reject_log_error"):
        original = getattr(Message, name, None)
        if original is None or getattr(original, "_settles_on_a_lost_connection", False):
            continue

        @functools.wraps(original)
        def settle(
            self: Message, logger: logging.Logger, errors: Any, *args: Any, _original=original, **kwargs: Any
        ):
            try:
                return _original(self, logger, errors, *args, **kwargs)
            except AttributeError:
                if not _connection_gone(self):
                    raise
                logger.warning(
                    "message %r came over a lost broker connection: nothing to settle", self.delivery_tag
                )
                return None

        settle._settles_on_a_lost_connection = True  # type: ignore[attr-defined]
        setattr(Message, name, settle)


# How long past the soft-shutdown window a cold shutdown may take before the worker ends itself.
SHUTDOWN_GRACE_S = 10.0


def _children(pid: int) -> list[int]:
    """The pool processes: every process whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def bound_the_cold_shutdown(app: Celery) -> None:
    """SIGTERM ends the worker within the soft-shutdown window (plus ``SHUTDOWN_GRACE_S``), always.

    Celery's cold shutdown waits out the window and then stops the pool from inside the signal handler,
    where it can hang for good (seen with a task that finished during the window). Past the grace the
    worker ends itself and its pool processes as SIGKILL would, which loses nothing here: every task is
    safe to run again, and the sweeper picks up what was in flight.
    """

    @worker_shutting_down.connect(weak=False)
    def arm(sig: str = "", how: str = "", **_: object) -> None:
        if how != "Cold" or getattr(arm, "armed", False):
            return
        arm.armed = True  # type: ignore[attr-defined]
        limit = float(app.conf.worker_soft_shutdown_timeout or 0) + SHUTDOWN_GRACE_S

        def watchdog() -> None:
            time.sleep(limit)
            # Not through logging: the stuck main thread may hold its locks.
            os.write(2, f"cold shutdown still running after {limit:.0f} s: ending the worker now\n".encode())
            for pid in _children(os.getpid()):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            os._exit(1)

        threading.Thread(target=watchdog, name="shutdown-watchdog", daemon=True).start()


def reuse_the_redis_client() -> None:
    """kombu's Redis channel must not build a redis-py client for every command it sends.

    ``Channel.conn_or_acquire`` makes a new client each time it is not handed one: for every publish, task
    event and queue command. A client fills a table of about 170 response callbacks as it is built, 160 µs,
    more than the command it sends; the worker's main process, which publishes each task's received,
    started and succeeded events one at a time, spent a third of its CPU there. The clients all share the
    channel's connection pool and keep no state of their own between commands, so one per channel (and
    pool) does the same work.
    """
    original = RedisChannel.conn_or_acquire
    if getattr(original, "_reuses_its_client", False):
        return

    @contextlib.contextmanager
    def conn_or_acquire(self: RedisChannel, client: Any = None) -> Any:
        if client:
            yield client
            return
        pool = self.pool
        reused = self.__dict__.get("_reused_client")
        if reused is None or reused.connection_pool is not pool:
            reused = self.__dict__["_reused_client"] = self._create_client()
        yield reused

    conn_or_acquire._reuses_its_client = True  # type: ignore[attr-defined]
    RedisChannel.conn_or_acquire = conn_or_acquire  # type: ignore[method-assign]


def apply(app: Celery | None = None) -> None:
    survive_broker_restart()
    settle_on_a_lost_connection()
    reuse_the_redis_client()
    if app is not None:
        bound_the_cold_shutdown(app)
