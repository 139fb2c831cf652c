"""`make run`: the whole product in one terminal, with a demo account, ready for a first video.

    uv run python -m dev.run

Environment, then Postgres and Redis (found or started), migrations, the processes of
dev.procs under one supervisor, a health wait, the demo account, and a "try it" text.
Ctrl-C stops everything; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from dev import config, procs, services
from dev.supervisor import Supervisor

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
GRACE_S = 10.0
MIGRATE_TIMEOUT_S = 300.0
LOCAL = "127.0.0.1"
# One stop request often arrives twice: from the terminal to the whole process group, and
# forwarded by `uv run` (always for SIGTERM, for SIGINT when not on a TTY). Only a later
# signal is a second request.
SIGNAL_ECHO_S = 1.0

DEMO_ACCOUNT = {"email": "demo@example.com", "plan": "chatgpt_pro", "quota": 1000}
DEMO_REMARK = "demo account (simulator)"
DEMO_PROMPT = "a red fox running through fresh snow"


class StartupError(Exception):
    """Something did not come up; the message says what and is shown as is."""


class Stopped(Exception):
    """The user asked to stop (SIGINT/SIGTERM)."""


class ChildExited(Exception):
    def __init__(self, name: str, code: int) -> None:
        super().__init__(name, code)
        self.name = name
        self.code = code


def say(text: str = "") -> None:
    print(text, flush=True)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def api_base(env: Mapping[str, str]) -> str:
    return f"http://{LOCAL}:{env['PORT']}"


def first_api_key(env: Mapping[str, str]) -> str:
    keys = [k.strip() for k in env.get("API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else "<your API key>"


def process_names(simulator: bool) -> list[str]:
    return (["sim"] if simulator else []) + ["api", "worker", "beat", "flower"]


# Steps ------------------------------------------------------------------


async def busy_ports(env: Mapping[str, str], simulator: bool) -> list[str]:
    """Ports our processes will listen on that something else already holds."""
    wanted = {"PORT": "api", "FLOWER_PORT": "flower", "WORKER_METRICS_PORT": "worker"}
    if simulator:
        wanted["SIM_PORT"] = "sim"
    busy = []
    for var, name in wanted.items():
        if int(env.get(var) or 0) and await services.tcp_open(LOCAL, int(env[var]), limit_s=0.5):
            busy.append(f"port {env[var]} ({var}, for {name}) is already in use")
    return busy


async def migrate(env: Mapping[str, str], cwd: Path) -> None:
    argv = procs.command("migrate")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), MIGRATE_TIMEOUT_S)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise StartupError(f"Migrations did not finish within {MIGRATE_TIMEOUT_S:.0f} s") from None
        raise
    if proc.returncode:
        text = output.decode(errors="replace").rstrip()
        raise StartupError(f"Migrations failed ({describe_exit(proc.returncode)}): {' '.join(argv)}\n{text}")


async def http_ok(client: httpx.AsyncClient, url: str, deadline: float) -> bool:
    loop = asyncio.get_running_loop()
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url, timeout=2.0)).status_code == 200:
                return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.25)


async def wait_ready(client: httpx.AsyncClient, checks: Mapping[str, str], limit_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    results = await asyncio.gather(*(http_ok(client, url, deadline) for url in checks.values()))
    missing = [
        f"{name} (no 200 from GET {url})"
        for (name, url), ok in zip(checks.items(), results, strict=True)
        if not ok
    ]
    if missing:
        raise StartupError(
            f"Did not come up within {limit_s:.0f} s: {'; '.join(missing)}. Stopping everything."
        )


def load_account(path: Path) -> dict[str, Any] | None:
    try:
        account = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return account if isinstance(account, dict) and account.get("access_token") else None


def save_account(path: Path, account: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dict(account), fh, indent=2)
        fh.write("\n")
    tmp.replace(path)


async def sim_account(client: httpx.AsyncClient, sim: str, path: Path) -> dict[str, Any]:
    """The demo account, registered with this run's simulator (its state lives in memory only)."""
    saved = load_account(path)
    if saved is not None:
        # The session and refresh tokens too: the gateway keeps the ones it was given first,
        # and refreshes with them once the access token expires.
        restore = {
            k: saved[k] for k in ("email", "session_token", "refresh_token", "client_id") if saved.get(k)
        }
        body = {
            "access_token": saved["access_token"],
            "plan": DEMO_ACCOUNT["plan"],
            "quota": DEMO_ACCOUNT["quota"],
            **restore,
        }
        resp = await client.post(f"{sim}/_sim/accounts", json=body)
        if resp.is_success:
            account = {**saved, **resp.json()}
            save_account(path, account)
            return account
        say(f"Warning: the simulator refused the saved demo token ({resp.status_code} {resp.text[:300]});")
        say("         creating a new demo account.")
    resp = await client.post(f"{sim}/_sim/accounts", json=DEMO_ACCOUNT)
    if not resp.is_success:
        raise StartupError(
            f"The simulator did not create the demo account: {resp.status_code} {resp.text[:500]}"
        )
    account = resp.json()
    save_account(path, account)
    return account


async def add_to_gateway(
    client: httpx.AsyncClient, api: str, admin_key: str, account: Mapping[str, Any]
) -> str:
    body = {
        "token": account["access_token"],
        "st": account.get("session_token"),
        "rt": account.get("refresh_token"),
        "client_id": account.get("client_id"),
        "remark": DEMO_REMARK,
    }
    resp = await client.post(f"{api}/api/tokens", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    who = f"{account.get('email', 'demo account')} ({account.get('plan', DEMO_ACCOUNT['plan'])})"
    if resp.status_code == 409:
        return f"Demo account: {who}, already in the gateway"
    if resp.is_success:
        return f"Demo account: {who}, added to the gateway"
    return f"Warning: the gateway did not take the demo account: {resp.status_code} {resp.text[:500]}"


async def demo_account(client: httpx.AsyncClient, env: Mapping[str, str], path: Path) -> str:
    try:
        account = await sim_account(client, config.sim_base_url(env), path)
        return await add_to_gateway(client, api_base(env), env["ADMIN_KEY"], account)
    except (StartupError, httpx.HTTPError, ValueError, KeyError) as exc:
        # The stack is up; without the demo account it still works once an account is added by hand.
        return f"Warning: could not register the demo account: {exc!r}"


# Texts ------------------------------------------------------------------


def add_account_text(env: Mapping[str, str]) -> str:
    return "\n".join(
        [
            "No account registered (real upstream). Add one with:",
            "",
            f'curl -X POST {api_base(env)}/api/tokens -H "Authorization: Bearer {env["ADMIN_KEY"]}" \\',
            "  -H 'Content-Type: application/json' -d '{\"token\": \"<access token>\"}'",
        ]
    )


CURL_EXAMPLE = """\
BASE={base} KEY={key}
AUTH="Authorization: Bearer $KEY"
ID=$(curl -s "$BASE/v1/videos" -H "$AUTH" -H "Content-Type: application/json" \\
  -d '{body}' \\
  | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v.get("id") or sys.exit(v))') \\
  && echo "video $ID" \\
  && until curl -s "$BASE/v1/videos/$ID" -H "$AUTH" | python3 -c '
import json,sys; v=json.load(sys.stdin); print(v.get("status"), v.get("progress"), v.get("error") or "")
sys.exit(v.get("status") in ("queued", "in_progress"))'; do sleep 2; done \\
  && curl -sf "$BASE/v1/videos/$ID/content" -H "$AUTH" -o video.mp4 && echo "saved video.mp4"\
"""

SDK_EXAMPLE = """\
uv run python - <<'EOF'
from openai import OpenAI
client = OpenAI(base_url="{base}/v1", api_key="{key}")
video = client.videos.create_and_poll(model="sora-2", prompt="{prompt}", seconds="10")
print(video.id, video.status)
client.videos.download_content(video.id).write_to_file("video.mp4")
EOF\
"""


def flower_login(env: Mapping[str, str]) -> str:
    user, _, password = env.get("FLOWER_BASIC_AUTH", "").split(",")[0].partition(":")
    return f"   (user {user}, password {password})" if password else ""


def try_it_text(env: Mapping[str, str], simulator: bool) -> str:
    base = api_base(env)
    key = first_api_key(env)
    body = json.dumps({"model": "sora-2", "prompt": DEMO_PROMPT, "seconds": "10"}, separators=(",", ":"))
    rule = "-" * 78
    lines = [
        rule,
        "Everything is up. Ctrl-C stops it all.",
        "",
        f"  API        {base}/v1   (API key: {key})",
        f"  API docs   {base}/schema",
        f"  Console    {base}/console   (log in with the admin key)",
        f"  Flower     http://{LOCAL}:{env['FLOWER_PORT']}{flower_login(env)}",
        f"  Metrics    {base}/metrics   (Authorization: Bearer <admin key>)",
    ]
    if int(env.get("WORKER_METRICS_PORT") or 0):
        lines.append(f"             http://{LOCAL}:{env['WORKER_METRICS_PORT']}/metrics   (worker)")
    if simulator:
        lines.append(f"  Simulator  {config.sim_base_url(env)}")
    lines += [
        f"  Admin key  {env['ADMIN_KEY']}   (POST {base}/api/tokens adds accounts)",
        "",
        "Make a video with curl (paste into another terminal):",
        "",
        CURL_EXAMPLE.format(base=shlex.quote(base), key=shlex.quote(key), body=body),
        "",
        "Or with the openai Python SDK:",
        "",
        SDK_EXAMPLE.format(base=base, key=key, prompt=DEMO_PROMPT),
        rule,
    ]
    return "\n".join(lines)


# The run ----------------------------------------------------------------


class Run:
    def __init__(self, root: Path = ROOT, environ: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.data_dir = root / ".data"
        self.environ = os.environ if environ is None else environ
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()
        self.stopping_since: float | None = None
        self.supervisor: Supervisor | None = None
        self.services: list[services.Service] = []

    def on_signal(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.stopping_since is None:
            self.stopping_since = now
            self.stop.set()
            say("\nStopping... (Ctrl-C again to kill at once)")
        elif now - self.stopping_since >= SIGNAL_ECHO_S:
            self.hurry.set()

    async def guard(self, aw: Awaitable[T]) -> T:
        """Await `aw`, unless the user asks to stop or a child dies first."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.stop.wait())
        watch: set[asyncio.Future[Any]] = {task, stop}
        exited = None
        if self.supervisor is not None and self.supervisor.children:
            exited = asyncio.ensure_future(self.supervisor.first_exit())
            watch.add(exited)
        try:
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in watch - {task}:
                fut.cancel()
        if exited is not None and exited.done() and not exited.cancelled():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise ChildExited(*exited.result())
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise Stopped

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal)
        try:
            await self.up()
            # Never completes by itself: guard() ends it with Stopped or ChildExited.
            await self.guard(loop.create_future())
        except Stopped:
            return 0
        except ChildExited as exc:
            say(f"{exc.name} {describe_exit(exc.code)}; stopping the others.")
            return 1
        except StartupError as exc:
            say(str(exc))
            return 1
        finally:
            await self.down()
        return 0

    async def up(self) -> None:
        dev = config.build(self.root, self.environ)
        env = dev.env
        say(dev.upstream)
        busy = await self.guard(busy_ports(env, dev.simulator))
        if busy:
            raise StartupError(
                "Cannot start: " + "; ".join(busy) + ".\n"
                "Is another `make run` still running? Otherwise set other ports in .env."
            )

        try:
            pg = await services.find_postgres(env, self.data_dir)
        except Exception as exc:
            raise StartupError(
                f"Postgres: none found on 127.0.0.1:5432 and the embedded one failed: {exc}"
            ) from exc
        self.services.append(pg)
        env["DATABASE_URL"] = pg.url
        say(f"Postgres: {pg.origin}")
        self.check_stop()

        try:
            rd = await services.find_redis(env, self.data_dir)
        except Exception as exc:
            raise StartupError(
                f"Redis: none found on 127.0.0.1:6379 and the embedded one failed: {exc}"
            ) from exc
        self.services.append(rd)
        env["REDIS_URL"] = rd.url
        say(f"Redis: {rd.origin}")
        self.check_stop()

        await self.guard(migrate(env, self.root))
        say("Migrations: up to date")

        names = process_names(dev.simulator)
        say(f"Starting {', '.join(names)}...")
        self.supervisor = Supervisor(env=env, cwd=self.root, width=max(map(len, names)))
        for name in names:
            await self.supervisor.start(name, procs.command(name))

        checks = {"api": f"{api_base(env)}/healthz"}
        if dev.simulator:
            checks = {"sim": f"{config.sim_base_url(env)}/_sim/health", **checks}
        # trust_env=False: a proxy from the environment must not intercept calls to 127.0.0.1.
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            await self.guard(wait_ready(client, checks, READY_TIMEOUT_S))
            if dev.simulator:
                say(await self.guard(demo_account(client, env, self.data_dir / "demo-account.json")))
            else:
                say(add_account_text(env))
        say(try_it_text(env, dev.simulator))

    async def down(self) -> None:
        if self.supervisor is not None:
            codes = await self.supervisor.stop(GRACE_S, self.hurry)
            killed = [n for n, code in codes.items() if code == -signal.SIGKILL]
            if killed:
                say(f"Killed (did not stop on SIGTERM in time): {', '.join(killed)}")
        for service in reversed(self.services):
            if service.stop is not None:
                await asyncio.to_thread(service.stop)
        say("Stopped.")


def main() -> int:
    return asyncio.run(Run().main())


if __name__ == "__main__":
    sys.exit(main())
