"""The real worker keeps its heartbeat file fresh while it runs and removes it when it stops."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import redis

from dev import procs
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_worker_touches_its_heartbeat_file_until_it_stops(settings: Settings, tmp_path: Path) -> None:
    beat_file = tmp_path / "heartbeat"
    prefix = f"{settings.redis_prefix}hb{secrets.token_hex(3)}:"
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": prefix,
        "DATABASE_URL": settings.database_url,
        "WORKER_HEARTBEAT_FILE": str(beat_file),
        "WORKER_HEARTBEAT_INTERVAL_S": "0.2",
        "WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "1",
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*procs.command("worker"), "--concurrency=1"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while not beat_file.exists():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "no heartbeat file within 30 s"
            time.sleep(0.1)
        first = beat_file.stat().st_mtime_ns
        deadline = time.monotonic() + 5
        while beat_file.stat().st_mtime_ns == first:
            assert time.monotonic() < deadline, "the heartbeat file was touched once only"
            time.sleep(0.05)

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        assert not beat_file.exists(), "a stopped worker leaves no heartbeat behind"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
        client = redis.Redis.from_url(settings.redis_url)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
