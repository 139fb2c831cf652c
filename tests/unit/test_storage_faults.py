"""Our own infrastructure failing: what the API answers, and the Celery fixes that keep a worker alive."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.worker.consumer.consumer import Consumer
from kombu.message import Message
from sqlalchemy.exc import DBAPIError

from api.errors import _database_away
from worker import celery_fixes

ROOT = Path(__file__).resolve().parents[2]


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "away"),
    [
        ("57P03", True),  # the database system is starting up / shutting down
        ("57P01", True),  # terminating connection due to administrator command
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("23505", False),  # a unique violation is a bug or a race, not an outage
        ("22P02", False),
    ],
)
def test_postgres_refusals_that_mean_it_is_away(sqlstate: str, away: bool) -> None:
    assert _database_away(DBAPIError("SELECT 1", None, _PgError(sqlstate))) is away


class _BrokenChannel:
    """A channel whose acks fail the way kombu's Redis channel does once its connection was collected."""

    def __init__(self, transport: object) -> None:
        self.connection = transport
        self.no_ack_consumers = None

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")


def test_a_message_of_a_lost_broker_connection_is_settled_quietly(caplog: pytest.LogCaptureFixture) -> None:
    celery_fixes.apply()
    lost = Message(body=b"{}", delivery_tag="tag-1", channel=_BrokenChannel(SimpleNamespace(client=None)))
    logger = logging.getLogger("test")
    with caplog.at_level(logging.WARNING):
        lost.ack_log_error(logger, (ConnectionError,))
        lost.reject_log_error(logger, (ConnectionError,), requeue=True)
    assert "lost broker connection" in caplog.text

    # On a live connection the same error is a bug, and still raises.
    live = Message(body=b"{}", delivery_tag="tag-2", channel=_BrokenChannel(SimpleNamespace(client=object())))
    with pytest.raises(AttributeError):
        live.ack_log_error(logger, (ConnectionError,))


def test_a_lost_broker_connection_does_not_stop_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    def restore_fails(self: Consumer, exc: BaseException) -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", restore_fails)
    celery_fixes.survive_broker_restart()
    Consumer.on_connection_error_after_connected(SimpleNamespace(), ConnectionError("closed"))  # type: ignore[arg-type]
    celery_fixes.survive_broker_restart()  # applied once only
    assert Consumer.on_connection_error_after_connected.__wrapped__ is restore_fails  # type: ignore[attr-defined]


def test_the_shutdown_watchdog_finds_the_pool_processes() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in celery_fixes._children(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_cold_shutdown_that_hangs_ends_the_worker_and_its_pool() -> None:
    script = """
import subprocess, sys, time
from celery import Celery
from celery.signals import worker_shutting_down
from worker import celery_fixes

celery_fixes.SHUTDOWN_GRACE_S = 0.2
app = Celery("t")
app.conf.worker_soft_shutdown_timeout = 0.3
celery_fixes.bound_the_cold_shutdown(app)
pool = subprocess.Popen(["sleep", "60"])
print(pool.pid, flush=True)
worker_shutting_down.send(sender="w", sig="SIGTERM", how="Cold", exitcode=1)
time.sleep(60)  # the stuck shutdown
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pool_pid = int(proc.stdout.readline())  # type: ignore[union-attr]
    assert proc.wait(timeout=30) == 1
    assert "ending the worker now" in proc.stderr.read()  # type: ignore[union-attr]
    # Its pool process is gone too, not left behind as an orphan.
    deadline = time.monotonic() + 10
    while _running(pool_pid):
        assert time.monotonic() < deadline, "the pool process was left running"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
