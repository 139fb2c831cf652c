"""Importing and building the apps must not touch the network (pods start before their dependencies)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.infra import ROOT

# Addresses where nothing listens: any connection attempt would fail loudly or hang.
UNREACHABLE = {
    "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "SORA_BACKEND_URL": "http://127.0.0.1:9/backend",
    "ENCRYPTION_KEY": "k",
}

SCRIPT = """
import socket
def refuse(*args, **kwargs):
    raise AssertionError(f"network connection at import time: {args!r}")
socket.socket.connect = refuse
socket.create_connection = refuse
import worker.main
from api.app import create_app
create_app()
print("ok")
"""


def test_import_and_build_without_connecting() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, **UNREACHABLE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
