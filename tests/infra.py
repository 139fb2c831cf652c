"""Real Postgres and Redis for the suite: the running ones, or containers where Docker answers.

Every run gets its own throwaway databases and its own Redis key prefix, and
removes them when it ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def stop_processes(*procs: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to each process still running, then a wait for each: one outliving ``timeout`` is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_migrated_database(server_url: str) -> tuple[str, str]:
    """A new database on the server ``server_url`` names, migrated to head: its name and SQLAlchemy URL."""
    name = f"sg_test_{secrets.token_hex(5)}"

    async def create() -> None:
        connection = await asyncpg.connect(_plain(server_url))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{result.stdout}\n{result.stderr}")
    return name, url


class Services:
    """Finds the servers once per run; starts containers only when nothing is listening."""

    def __init__(self) -> None:
        self._containers: list = []
        self.pg_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
        self.redis_url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
        if not _reachable(self.pg_url, 5432):
            self.pg_url = self._container_pg()
        if not _reachable(self.redis_url, 6379):
            self.redis_url = self._container_redis()
        self.prefix = f"t{secrets.token_hex(4)}:"
        self._databases: list[str] = []
        self._template: str | None = None

    def _require_docker(self, what: str) -> None:
        if not _docker_answers():
            raise RuntimeError(
                f"{what} is not reachable (set TEST_DATABASE_URL / TEST_REDIS_URL) and Docker does not answer"
            )

    def _container_pg(self) -> str:
        self._require_docker("Postgres")
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver="asyncpg").start()
        self._containers.append(container)
        return container.get_connection_url()

    def _container_redis(self) -> str:
        self._require_docker("Redis")
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine").start()
        self._containers.append(container)
        host = container.get_container_host_ip()
        return f"redis://{host}:{container.get_exposed_port(6379)}/0"

    @staticmethod
    def _plain(url: str) -> str:
        return _plain(url)

    def create_database(self) -> str:
        """A new database at the migrations' head; returns its SQLAlchemy URL.

        The migrations run once per test process, into a template; every database after that is a copy of
        it (``CREATE DATABASE … TEMPLATE``), which takes milliseconds instead of an Alembic run.
        """
        if self._template is None:
            self._template, _ = create_migrated_database(self.pg_url)
            self._databases.append(self._template)
        name = f"sg_test_{secrets.token_hex(5)}"

        async def copy(template: str) -> None:
            connection = await asyncpg.connect(self._plain(self.pg_url))
            try:
                await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            finally:
                await connection.close()

        asyncio.run(copy(self._template))
        self._databases.append(name)
        return urlunsplit(urlsplit(self.pg_url)._replace(path=f"/{name}"))

    def close(self) -> None:
        async def drop() -> None:
            connection = await asyncpg.connect(self._plain(self.pg_url))
            try:
                for name in self._databases:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        try:
            asyncio.run(drop())
        finally:
            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                client.delete(key)
            client.close()
            for container in self._containers:
                container.stop()
