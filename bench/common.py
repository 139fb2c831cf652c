"""What every scenario shares: percentiles, process-tree memory, processes beside a Stack, the machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from dev.procs import command
from tests.e2e.stack import Stack

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        # Anything else running on the machine shares its cores with the stack and the load generator.
        "loadavg_1m": os.getloadavg()[0],
    }


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses; the fields after its last ")" do not.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(root: int) -> list[int]:
    tree = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def cpu_seconds(*pids: int) -> float:
    """User and system CPU the processes have used so far (the ones that are gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident * PAGE_KB / 1024


def _pss_mb(pid: int) -> float:
    """Proportional set size: pages shared after a fork count once across the tree, as a pod's memory does."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


class RssSampler:
    """Samples the summed RSS (and PSS) of process trees, prefork children included, and the pods' cgroup
    memory; keeps the peaks."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5, pods: list[PodMemory] = ()) -> None:
        self.roots = roots
        self.pods = list(pods)
        self.peak_mb = dict.fromkeys(roots, 0.0)
        self.peak_pss_mb = dict.fromkeys(roots, 0.0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def sample(self) -> None:
        for name, root in self.roots.items():
            pids = tree_pids(root)
            self.peak_mb[name] = max(self.peak_mb[name], sum(_rss_mb(pid) for pid in pids))
            self.peak_pss_mb[name] = max(self.peak_pss_mb[name], sum(_pss_mb(pid) for pid in pids))
        for pod in self.pods:
            pod.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class PodMemory:
    """A memory cgroup standing in for a pod (cgroup v1's memory controller, where the machine lets us make
    one): the process is put in it before it runs anything, so every page its tree touches is charged
    there once, as a container's are. ``rss`` is the cgroup's anonymous memory (cAdvisor's
    ``container_memory_rss``), ``usage`` adds the page cache (what a memory limit is held against).
    Without the controller (a cgroup v2-only host, no root) ``available`` is False and only the per-process
    figures are reported."""

    ROOT = Path("/sys/fs/cgroup/memory")

    def __init__(self, name: str) -> None:
        self.path = self.ROOT / name
        self.peak_rss_mb = 0.0
        self.peak_usage_mb = float("nan")
        try:
            self.path.mkdir(exist_ok=True)
            self.available = (self.path / "cgroup.procs").exists()
        except OSError:
            self.available = False

    def enter(self) -> None:
        """For ``preexec_fn``: moves the child into the cgroup between fork and exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def sample(self) -> None:
        if not self.available:
            return
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / "memory.stat").read_text().splitlines():
                if line.startswith("total_rss "):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 2**20)
            # The kernel's own high-water mark, not a sample.
            self.peak_usage_mb = int((self.path / "memory.max_usage_in_bytes").read_text()) / 2**20

    def remove(self) -> None:
        """Once its processes are gone (rmdir of a cgroup with members fails, and is retried briefly)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def spawn(
    stack: Stack,
    key: str,
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    pod: PodMemory | None = None,
) -> None:
    """Starts one more product process beside the stack's own, stopped with it (``stack.stop``)."""
    log = open(stack.logs / f"{key}.log", "ab")  # noqa: SIM115 (the child owns it)
    stack.procs[key] = subprocess.Popen(
        [*command(name), *args],
        cwd=Path(__file__).resolve().parent.parent,
        env={**stack.env, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=pod.enter if pod is not None and pod.available else None,
    )


def exit_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does, through the ``finally`` blocks that stop the stacks' processes
    (each in a session of its own, so they would outlive the run) and remove the pods' cgroups."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def stop(stack: Stack, key: str, timeout: float = 15, sig: int = signal.SIGTERM) -> None:
    """Stops a process and its children; SIGKILL when nothing it holds matters any more."""
    proc = stack.procs.pop(key)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # Prefork children that outlived their parent.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_log(stack: Stack, key: str, needle: str, timeout: float = 60) -> None:
    path = stack.logs / f"{key}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.procs[key].poll() is not None:
            raise RuntimeError(f"{key} exited; see {path}")
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{key} not ready after {timeout}s; see {path}")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def plain_dsn(stack: Stack) -> str:
    return stack.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)


def query(stack: Stack, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(plain_dsn(stack))
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


async def add_accounts(
    stack: Stack, count: int, *, plan: str = "chatgpt_pro", parallel: int = 16
) -> list[dict]:
    """``count`` simulator accounts in the gateway's pool, added ``parallel`` at a time."""
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    gate = asyncio.Semaphore(parallel)

    async def one(http: httpx.AsyncClient) -> dict:
        async with gate:
            seeded = (await http.post(f"{stack.sim_url}/_sim/accounts", json={"plan": plan})).json()
            response = await http.post(
                f"{stack.api_url}/api/tokens",
                json={
                    "token": seeded["access_token"],
                    "st": seeded.get("session_token"),
                    "rt": seeded.get("refresh_token"),
                    "client_id": seeded.get("client_id"),
                    "video_concurrency": 3,
                },
                headers=admin,
            )
            response.raise_for_status()
            return {"sim": seeded, "gateway": response.json()}

    async with httpx.AsyncClient(timeout=60) as http:
        return await asyncio.gather(*(one(http) for _ in range(count)))
