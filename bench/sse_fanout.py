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

import httpx
import msgspec
import redis

from tests.e2e.stack import Stack
from tests.infra import ROOT, Services


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _follow(
    http: httpx.AsyncClient,
    url: str,
    headers: dict,
    latencies: list[float],
    opened: list[int],
    target: int,
    ready: asyncio.Event,
) -> None:
    async with http.stream("GET", url, headers=headers) as response:
        first = True
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = msgspec.json.decode(line[6:])
            if first:  # the snapshot was read from Postgres, not published: no delivery latency
                first = False
                opened.append(1)
                if len(opened) == target:
                    ready.set()
                continue
            latencies.append(time.time() - event["ts"])


async def _run(stack: Stack, streams: int, jobs: int) -> dict:
    redis_client = redis.Redis.from_url(stack.env["REDIS_URL"])
    clients_before = len(redis_client.client_list())
    ids = [stack.create_video(prompt=f"fan-out {i}")["id"] for i in range(jobs)]
    latencies: list[float] = []
    opened: list[int] = []
    ready = asyncio.Event()
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        tasks = [
            asyncio.create_task(
                _follow(
                    http,
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
        pubsub_open = len(redis_client.client_list(_type="pubsub"))
        await asyncio.gather(*tasks, return_exceptions=True)
    redis_client.close()
    return {
        "streams": streams,
        "jobs": jobs,
        "streams_open_after_s": round(open_after, 2),
        "events_delivered": len(latencies),
        "latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "api_peak_rss_mb": round(_peak_rss_mb(stack.procs["api"].pid), 1),
        "redis_clients_before": clients_before,
        "redis_clients_while_open": clients_open,
        "redis_pubsub_clients_while_open": pubsub_open,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sse_fanout.json"))
    args = parser.parse_args()

    services = Services()
    accounts = max(1, -(-args.jobs // 3))
    # Slow enough simulated time that every stream is open before the jobs progress.
    stack = Stack(services, "bench-sse", time_scale=0.3, poll_interval=1.0)
    try:
        stack.start()
        for _ in range(accounts):
            stack.add_account(plan="chatgpt_pro")
        result = asyncio.run(_run(stack, args.streams, args.jobs))
    finally:
        stack.stop()
        services.close()
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
