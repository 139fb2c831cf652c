"""The whole product as separate processes: simulator, API, Celery worker and beat.

Each Stack has its own database, Redis prefix, ports and media directory, so
stacks never see each other's jobs or accounts. Process output goes to
``test-artifacts/<stack>/<process>.log`` for post-mortems.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from dev.procs import command
from tests.infra import ROOT, Services, create_migrated_database

ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    api_key = "sk-e2e"
    admin_key = "admin-e2e"

    def __init__(
        self,
        services: Services,
        name: str,
        *,
        time_scale: float = 0.03,
        poll_interval: float = 0.5,
        extra_env: dict[str, str] | None = None,
        redis_url: str | None = None,
        database_url: str | None = None,
    ) -> None:
        """``redis_url``/``database_url`` point the stack at servers of its own (see ``PrivateRedis`` and
        ``PrivatePostgres``) instead of the suite's shared ones."""
        self.name = f"{name}-{secrets.token_hex(2)}"
        self.logs = ARTIFACTS / self.name
        self.logs.mkdir(parents=True, exist_ok=True)
        self.sim_port = free_port()
        self.api_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url or services.create_database(),
            "REDIS_URL": redis_url or services.redis_url,
            "REDIS_PREFIX": f"{services.prefix}{self.name}:",
            "API_KEYS": self.api_key,
            "ADMIN_KEY": self.admin_key,
            "ENCRYPTION_KEY": secrets.token_hex(16),
            "HOST": "127.0.0.1",
            "PORT": str(self.api_port),
            "PUBLIC_BASE_URL": self.api_url,
            "MEDIA_DIR": str(self.logs / "media"),
            "SORA_BACKEND_URL": f"{self.sim_url}/backend",
            "SORA_WEB_URL": self.sim_url,
            "OPENAI_AUTH_URL": self.sim_url,
            "SENTINEL_PROVIDER": f"{self.sim_url}/sentinel",
            "POLL_INTERVAL_S": str(poll_interval),
            "SWEEP_INTERVAL_S": "2",
            "REQUEUE_AFTER_S": "10",
            "WORKER_CONCURRENCY": "2",
            # Stopping an idle worker waits this long (soft shutdown on idle); tests that need more say so.
            "WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "1",
            "BEAT_SCHEDULE_FILE": str(self.logs / "celerybeat-schedule"),
            "SIM_PORT": str(self.sim_port),
            "SIM_TIME_SCALE": str(time_scale),
            # Values may name the simulator's address, which is only known now.
            **{key: value.format(sim_url=self.sim_url) for key, value in (extra_env or {}).items()},
        }
        self.procs: dict[str, subprocess.Popen] = {}
        # Where each process's log stood when it was last started: readiness is read after that.
        self._log_start: dict[str, int] = {}
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so a request never races the
        # server closing the connection it reuses ("Server disconnected without sending a response").
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

    # Processes ------------------------------------------------------------------

    def start(self, *names: str) -> Stack:
        for name in names or ("sim", "api", "worker", "beat"):
            path = self.logs / f"{name}.log"
            self._log_start[name] = path.stat().st_size if path.exists() else 0
            log = open(path, "ab")  # noqa: SIM115 (the child owns it)
            self.procs[name] = subprocess.Popen(
                command(name),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(*(names or ("sim", "api", "worker")))
        return self

    def wait_ready(self, *names: str, timeout: float = 60) -> None:
        checks = {
            "sim": lambda: self.http.get(f"{self.sim_url}/_sim/health").status_code == 200,
            "api": lambda: self.http.get(f"{self.api_url}/readyz").status_code == 200,
            "worker": lambda: b" ready." in self.log_text("worker", since_start=True).encode(),
        }
        deadline = time.monotonic() + timeout
        for name in names:
            check = checks.get(name)
            while check is not None:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}"
                    )
                try:
                    if check():
                        break
                except (httpx.HTTPError, FileNotFoundError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not come up; see {self.logs / (name + '.log')}")
                time.sleep(0.2)

    def log_text(self, name: str, *, since_start: bool = False) -> str:
        """The process's log; with ``since_start`` only what its latest start wrote."""
        data = (self.logs / f"{name}.log").read_bytes()
        return data[self._log_start.get(name, 0) if since_start else 0 :].decode(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kills the process and all its children at once, as the OOM killer or a node loss would."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def signal(self, name: str, sig: int) -> None:
        """Sends ``sig`` to the process alone, as `docker stop` or Kubernetes do (children are its own)."""
        os.kill(self.procs[name].pid, sig)

    def wait_exit(self, name: str, timeout: float) -> int:
        """Waits for the process to end by itself; its exit code. It is killed (and the test fails) if not."""
        proc = self.procs[name]
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(name)
            raise AssertionError(f"{name} still running {timeout}s after it was told to stop") from None
        self.procs.pop(name)
        # Its pool processes are gone too: nothing of the old worker may still be working.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return code

    def stop(self) -> None:
        """SIGTERM to every process at once, SIGKILL to whatever is left after 10 s."""
        procs = [self.procs.pop(name) for name in list(self.procs)]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.http.close()

    # The simulator and the admin API ---------------------------------------------------

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.sim_url}/_sim{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def creates(self, account: dict) -> int:
        """Video creates the simulator received for an account (as ``add_account`` returned it)."""
        return self.sim("GET", "/stats")["creates"].get(account["sim"]["account_id"], 0)

    def wait_in_flight(self, route: str, account: dict, *, timeout: float = 60) -> dict:
        """Waits until the simulator is inside a request on ``route`` for the account (received, not yet
        answered: a `slow` or `create_then_slow` fault holds it) and returns its log entry."""
        deadline = time.monotonic() + timeout
        account_id = account["sim"]["account_id"]
        while True:
            for entry in self.sim("GET", "/requests", params={"route": route, "account": account_id}):
                if entry["status"] is None:
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no {route} request in flight after {timeout}s; logs in {self.logs}")
            time.sleep(0.1)

    def add_account(
        self, *, plan: str = "chatgpt_plus", video_concurrency: int = 3, **sim_fields: Any
    ) -> dict:
        """Creates an account on the simulator and adds it to the gateway's pool."""
        seeded = self.sim("POST", "/accounts", json={"plan": plan, **sim_fields})
        response = self.http.post(
            f"{self.api_url}/api/tokens",
            json={
                "token": seeded["access_token"],
                "st": seeded.get("session_token"),
                "rt": seeded.get("refresh_token"),
                "client_id": seeded.get("client_id"),
                "video_concurrency": video_concurrency,
            },
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )
        assert response.status_code == 200, response.text
        return {"sim": seeded, "gateway": response.json()}

    def client_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def create_video(self, **body: Any) -> dict:
        response = self.http.post(f"{self.api_url}/v1/videos", json=body, headers=self.client_headers())
        assert response.status_code == 200, response.text
        return response.json()

    def get_video(self, video_id: str) -> dict:
        response = self.http.get(f"{self.api_url}/v1/videos/{video_id}", headers=self.client_headers())
        assert response.status_code == 200, response.text
        return response.json()

    def wait_video(
        self, video_id: str, *, timeout: float = 60, until: tuple[str, ...] = ("completed", "failed")
    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            video = self.get_video(video_id)
            if video["status"] in until:
                return video
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{video_id} still {video['status']} after {timeout}s; logs in {self.logs}"
                )
            time.sleep(0.2)


class PrivateRedis:
    """A redis-server of the test's own on a free port, to kill and start again (empty: it keeps nothing)."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        logs.mkdir(parents=True, exist_ok=True)
        self._log = logs / f"redis-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self._proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not come up; see {self._log}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: every key, queued message, lease and subscription is gone."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("pg_ctl not found (install postgresql)")
    return Path(pg_ctl).parent


class PrivatePostgres:
    """A Postgres cluster of the test's own on a free port (trust auth), to stop and start again.

    Postgres refuses to run as root, so as root the cluster belongs to the ``postgres`` OS user.
    """

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._bin = _postgres_bin()
        self._root = Path(tempfile.mkdtemp(prefix="sg-pg-"))
        self._data = self._root / "data"
        self._logs = logs
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self._root, user="postgres", group="postgres")

    def _run(self, *argv: str) -> None:
        command = [str(self._bin / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> PrivatePostgres:
        if not self._data.exists():
            self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self._data),
            "-l",
            str(self._root / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        """A fast shutdown: every connection is closed, new ones are refused."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self) -> str:
        return create_migrated_database(self.url)[1]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        with contextlib.suppress(OSError):
            self._logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(self._root / "postgres.log", self._logs / f"postgres-{self.port}.log")
        shutil.rmtree(self._root, ignore_errors=True)
