"""Migrations are the only way the schema changes: they must match the models and run both ways."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.infra import ROOT, Services


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_models_match_migrations_and_downgrades_run(services: Services) -> None:
    url = services.create_database()  # already at head
    check = _alembic(url, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    for step in (("downgrade", "base"), ("upgrade", "head")):
        result = _alembic(url, *step)
        assert result.returncode == 0, result.stdout + result.stderr
