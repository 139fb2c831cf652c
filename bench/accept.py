"""Scenario 1, accept: POST /v1/videos from many concurrent clients against one and two API processes.

Two load shapes per API count: saturation (closed loop: ``concurrency`` clients each sending the next
request when the last one answers), then a fixed offered rate (open loop: each request is due at its slot
and its latency counts from that slot, so a server that falls behind is charged for the queue it builds).
No worker runs, so the API, Postgres and Redis are what is measured. The load comes from
``bench.loadgen`` (raw asyncio streams, tens of microseconds a request), so the generator does not take
the cores the API needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis

from bench.common import add_accounts, cpu_seconds, percentile, query, spawn, stop, tree_pids, wait_http
from bench.loadgen import Load, Target
from shared import names
from tests.e2e.stack import Stack, free_port
from tests.infra import Services

BODY = {"model": "sora-2", "prompt": "a red fox running through fresh snow", "seconds": "10"}


@dataclass(frozen=True)
class AcceptConfig:
    rate: float
    concurrency: int
    duration: float
    warmup: float
    api_processes: tuple[int, ...] = (1, 2)


def _summary(
    load: Load, elapsed: float, cpu: float, mode: str, processes: int, offered: float | None
) -> dict:
    results = load.results
    done = len(results.latencies)
    return {
        "api_processes": processes,
        "mode": mode,
        "offered_rps": offered,
        "requests": done,
        "errors": results.errors,
        # Status 0: no answer (the connection failed or the request was still waiting at the end).
        "statuses": {str(status): count for status, count in sorted(results.statuses.items())},
        "rps": round(done / elapsed, 1),
        "p50_ms": round(percentile(results.latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(results.latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(results.latencies, 0.99) * 1000, 1),
        "api_cpu_ms_per_request": round(cpu * 1000 / done, 2) if done else None,
    }


async def measure_urls(
    stack: Stack, urls: list[str], api_pids: list[int], config: AcceptConfig
) -> list[dict]:
    processes = len(urls)
    rows = []
    targets = [Target.post_json(url, BODY, stack.client_headers()) for url in urls]
    load = Load(targets, config.concurrency)
    try:
        await load.closed_loop(min(config.concurrency, 16), config.warmup)
        for mode in ("saturation", "fixed"):
            # What the previous phase left queued in the server is not this phase's to pay for.
            await asyncio.sleep(min(1.0, config.duration))
            load.reset()
            cpu_before = cpu_seconds(*api_pids)
            if mode == "fixed":
                elapsed = await load.open_loop(config.rate, config.duration)
            else:
                elapsed = await load.closed_loop(config.concurrency, config.duration)
            cpu = cpu_seconds(*api_pids) - cpu_before
            offered = config.rate if mode == "fixed" else None
            rows.append(_summary(load, elapsed, cpu, mode, processes, offered))
    finally:
        load.close()
    return rows


def measure(stack: Stack, config: AcceptConfig) -> list[dict]:
    """Runs on a stack whose simulator and API are up and no worker runs; the extra API processes it starts
    are stopped again, and the jobs it created are discarded, so the stack can be used on."""
    asyncio.run(add_accounts(stack, 1))
    urls = [f"{stack.api_url}/v1/videos"]
    extra: list[str] = []
    rows: list[dict] = []
    try:
        for processes in sorted(config.api_processes):
            while len(urls) < processes:
                port = free_port()
                key = f"api{len(urls) + 1}"
                spawn(stack, key, "api", env={"PORT": str(port)})
                extra.append(key)
                wait_http(f"http://127.0.0.1:{port}/readyz")
                urls.append(f"http://127.0.0.1:{port}/v1/videos")
            pids = [
                pid for key in ["api", *extra[: processes - 1]] for pid in tree_pids(stack.procs[key].pid)
            ]
            rows += asyncio.run(measure_urls(stack, urls[:processes], pids, config))
    finally:
        for key in extra:
            stop(stack, key)
    _discard(stack)
    return rows


def _discard(stack: Stack) -> None:
    """Drops the accepted jobs, their submit messages and the pool, as if this scenario had never run."""
    query(stack, "DELETE FROM jobs WHERE state = 'queued'")
    query(stack, "UPDATE accounts SET enabled = false")
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        client.delete(f"{stack.env['REDIS_PREFIX']}{names.QUEUE_SUBMIT}")
    finally:
        client.close()


def run(services: Services, config: AcceptConfig) -> list[dict]:
    stack = Stack(services, "bench-accept")
    try:
        stack.start("sim", "api")
        return measure(stack, config)
    finally:
        stack.stop()
