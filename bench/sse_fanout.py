"""SSE fan-out: N concurrent event streams on one API process, following jobs on the simulator.

Prints (and writes as JSON) the event delivery latency from the worker's publish to the client,
p50/p99, the API process's peak RSS, and Redis connection counts before and while the streams are open.

    uv run python -m bench.sse_fanout --streams 2000 --jobs 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import redis

from bench.common import cpu_seconds, exit_on_sigterm
from tests.e2e.stack import Stack
from tests.infra import ROOT, Services


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _redis_connections(pid: int, port: int) -> int:
    """Established TCP connections from the process to Redis (other clients of the server aside)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _follow(
    url: str,
    headers: dict,
    latencies: list[float],
    opened: list[int],
    target: int,
    ready: asyncio.Event,
) -> None:
    """One stream read on raw asyncio streams: an HTTP client's per-chunk cost (httpx's is about 0.1 ms)
    times thousands of streams takes the cores the API needs, and its event loop falls behind, which the
    latency would then measure. Each SSE message is one HTTP chunk; the stream ends with the empty chunk."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"GET {parts.path} HTTP/1.1", f"host: {parts.netloc}", "accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head[9:12]) != 200:
            raise RuntimeError(f"stream answered {head[:12]!r}")
        first = True
        while True:
            line = await reader.readline()
            if not line or line == b"0\r\n":
                return
            if not line.startswith(b"data: "):
                continue
            event = msgspec.json.decode(line[6:])
            if first:  # the snapshot was read from Postgres, not published: no delivery latency
                first = False
                opened.append(1)
                if len(opened) == target:
                    ready.set()
                continue
            latencies.append(time.time() - event["ts"])
    finally:
        writer.close()


async def _run(stack: Stack, streams: int, jobs: int) -> dict:
    redis_client = redis.Redis.from_url(stack.env["REDIS_URL"])
    redis_port = redis_client.connection_pool.connection_kwargs.get("port", 6379)
    api_pid = stack.procs["api"].pid
    clients_before = len(redis_client.client_list())
    api_before = _redis_connections(api_pid, redis_port)
    ids = [stack.create_video(prompt=f"fan-out {i}")["id"] for i in range(jobs)]
    latencies: list[float] = []
    opened: list[int] = []
    ready = asyncio.Event()
    started = time.monotonic()
    api_cpu_before, client_cpu_before = cpu_seconds(api_pid), time.process_time()
    tasks = [
        asyncio.create_task(
            _follow(
                f"{stack.api_url}/v1/videos/{ids[i % jobs]}/events",
                stack.client_headers(),
                latencies,
                opened,
                streams,
                ready,
            )
        )
        for i in range(streams)
    ]
    await asyncio.wait_for(ready.wait(), timeout=180)
    open_after = time.monotonic() - started
    clients_open = len(redis_client.client_list())
    api_open = _redis_connections(api_pid, redis_port)
    pubsub_open = len(redis_client.client_list(_type="pubsub"))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    api_cpu, client_cpu = cpu_seconds(api_pid) - api_cpu_before, time.process_time() - client_cpu_before
    redis_client.close()
    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    return {
        "streams": streams,
        "jobs": jobs,
        "streams_open_after_s": round(open_after, 2),
        "streams_failed": len(failed),
        "events_delivered": len(latencies),
        # CPU over the streams' whole life: the API process, and this process reading them.
        "api_cpu_s": round(api_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "api_peak_rss_mb": round(_peak_rss_mb(stack.procs["api"].pid), 1),
        "api_redis_connections_before": api_before,
        "api_redis_connections_while_open": api_open,
        "redis_clients_before": clients_before,
        "redis_clients_while_open": clients_open,
        "redis_pubsub_clients_while_open": pubsub_open,
        # Every 1/200th quantile, for the chart.
        "latencies_ms": [round(_percentile(latencies, q / 200) * 1000, 2) for q in range(201)]
        if latencies
        else [],
    }


def run(
    services: Services, streams: int, jobs: int, *, time_scale: float = 0.3, poll_interval: float = 1.0
) -> dict:
    """A stack of its own with ``jobs`` jobs followed by ``streams`` streams; the figures as a dict."""
    accounts = max(1, -(-jobs // 3))
    # Slow enough simulated time that every stream is open before the jobs progress.
    stack = Stack(services, "bench-sse", time_scale=time_scale, poll_interval=poll_interval)
    try:
        stack.start()
        for _ in range(accounts):
            stack.add_account(plan="chatgpt_pro")
        return asyncio.run(_run(stack, streams, jobs))
    finally:
        stack.stop()


def run_on(stack: Stack, streams: int, jobs: int) -> dict:
    """The same on another scenario's running stack (its worker and beat up), with accounts of its own."""
    for _ in range(max(1, -(-jobs // 3))):
        stack.add_account(plan="chatgpt_pro")
    return asyncio.run(_run(stack, streams, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sse_fanout.json"))
    args = parser.parse_args()
    exit_on_sigterm()

    services = Services()
    try:
        result = run(services, args.streams, args.jobs)
    finally:
        services.close()
    result.pop("latencies_ms", None)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": _machine(), **result}, indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)


def _machine() -> str:
    python = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {python}"


if __name__ == "__main__":
    main()
