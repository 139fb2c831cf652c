"""The whole product as separate processes: simulator, API, Celery worker and beat.

Each Stack has its own database, Redis prefix, ports and media directory, so
stacks never see each other's jobs or accounts. Process output goes to
``test-artifacts/<stack>/<process>.log`` for post-mortems.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from typing import Any

import httpx

from dev.procs import command
from tests.infra import ROOT, Services

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
    ) -> None:
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
            "DATABASE_URL": services.create_database(),
            "REDIS_URL": services.redis_url,
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
            "BEAT_SCHEDULE_FILE": str(self.logs / "celerybeat-schedule"),
            "SIM_PORT": str(self.sim_port),
            "SIM_TIME_SCALE": str(time_scale),
            # Values may name the simulator's address, which is only known now.
            **{key: value.format(sim_url=self.sim_url) for key, value in (extra_env or {}).items()},
        }
        self.procs: dict[str, subprocess.Popen] = {}
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so a request never races the
        # server closing the connection it reuses ("Server disconnected without sending a response").
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

    # Processes ------------------------------------------------------------------

    def start(self, *names: str) -> Stack:
        for name in names or ("sim", "api", "worker", "beat"):
            log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
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
            "worker": lambda: b" ready." in (self.logs / "worker.log").read_bytes(),
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

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kills the process and all its children at once, as the OOM killer or a node loss would."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.http.close()

    # The simulator and the admin API ---------------------------------------------------

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.sim_url}/_sim{path}", **kwargs)
        response.raise_for_status()
        return response.json()

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
