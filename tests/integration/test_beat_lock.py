"""Two beats against one Redis: only the lock holder sends, and the other takes over when it stops."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from dev import procs
from shared import names
from shared.settings import Settings
from tests.infra import stop_processes
from worker.beat import BeatLock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix(settings: Settings) -> Iterator[str]:
    prefix = f"{settings.redis_prefix}beat{secrets.token_hex(3)}:"
    yield prefix
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_the_lock_has_one_holder_until_it_is_released_or_expires(settings: Settings, prefix: str) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    key = names.Keys(prefix).beat_lock()
    first, second = BeatLock(client, key, ttl_s=1.0), BeatLock(client, key, ttl_s=1.0)
    try:
        assert first.hold() and not second.hold()
        assert first.hold(), "the holder renews"
        first.release()
        assert second.hold() and not first.hold()

        time.sleep(1.3)  # the holder died: nobody renewed
        assert first.hold()
        assert not second.hold(), "a lapsed holder does not get it back while another holds it"
        second.release()  # not the holder: no effect
        assert first.holder() == first.token
    finally:
        client.close()


def _maintenance_messages(client: redis.Redis, prefix: str) -> list[tuple[str, str]]:
    """(task name, sender pid) of every message beat sent, oldest first."""
    raw = client.lrange(f"{prefix}{names.QUEUE_MAINTENANCE}", 0, -1)
    out = []
    for item in reversed(raw):  # kombu LPUSHes; consumers pop from the right
        headers = json.loads(item)["headers"]
        out.append((headers["task"], headers["origin"].split("@")[0].removeprefix("gen")))
    return out


def _wait_for(check: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_two_beat_processes_tick_once_and_the_standby_takes_over(
    settings: Settings, prefix: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": prefix,
        "DATABASE_URL": settings.database_url,
        "POLL_INTERVAL_S": "0.3",
        "SWEEP_INTERVAL_S": "3600",
        "ACCOUNT_CHECK_INTERVAL_S": "3600",
        # Long enough that a CPU-starved holder still renews in time; the takeover below is a release.
        "BEAT_LOCK_TTL_S": "5",
    }
    beats: dict[str, subprocess.Popen[bytes]] = {}
    client = redis.Redis.from_url(settings.redis_url)
    try:
        for n in (1, 2):
            proc = subprocess.Popen(
                procs.command("beat"),
                cwd=ROOT,
                env={**env, "BEAT_SCHEDULE_FILE": str(tmp_path / f"schedule-{n}")},
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"beat-{n}.log").open("wb"),
            )
            beats[str(proc.pid)] = proc

        def ticks(since: int = 0) -> list[str]:
            sent = _maintenance_messages(client, prefix)[since:]
            return [pid for task, pid in sent if task == names.TASK_POLL_TICK]

        _wait_for(lambda: len(ticks()) >= 4, 60, "four poll ticks")
        senders = {pid for _, pid in _maintenance_messages(client, prefix)}
        assert len(senders) == 1, f"both beats sent: {senders}"
        (leader,) = senders
        assert leader in beats
        (standby,) = set(beats) - {leader}

        beats[leader].send_signal(signal.SIGTERM)
        assert beats[leader].wait(timeout=15) is not None
        before = len(_maintenance_messages(client, prefix))

        _wait_for(lambda: len(ticks(before)) >= 3, 30, "the standby's ticks")
        after = {pid for _, pid in _maintenance_messages(client, prefix)[before:]}
        assert after == {standby}
        holder = client.get(names.Keys(prefix).beat_lock())
        assert holder is not None and f":{standby}:" in holder.decode()
    finally:
        stop_processes(*beats.values())
        client.close()
