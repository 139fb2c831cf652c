"""Scenarios 2, 3 and 5: N video jobs in flight across M simulated accounts (3 slots each).

The jobs are created first (no worker running), then beat and ``workers`` worker processes start with the
default worker command and concurrency. Everything is read back from the truth afterwards: job rows from
Postgres (``completed_at`` is when a client's GET first answers ``completed``), each upstream task's
timings from the simulator (``/_sim/tasks``), and upstream requests by route from the simulator's
counters, taken before and after the run.

Polling efficiency (scenario 3) is computed analytically from the same run: the naive design polls
``pending`` once per job per interval, from the task's create until the first poll that finds it gone.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.common import (
    PodMemory,
    RssSampler,
    add_accounts,
    cpu_seconds,
    percentile,
    query,
    spawn,
    stop,
    tree_pids,
    wait_log,
)
from shared.models import JobState
from tests.e2e.stack import Stack
from tests.infra import Services

# Phase lengths of a video at scale 1 (sim/config.py): preprocessing, queued, running, processing, draft gap.
TASK_SECONDS = 1 + 45 + 60 + 5 + 2
# How long a task holds its account's slot: until it leaves pending, before the draft gap.
TASK_SLOT_SECONDS = TASK_SECONDS - 2
SLOTS = 3
# Media fetched per finished video: the file and its thumbnail.
DOWNLOADS_PER_JOB = 2
# Routes whose requests do not go to the Sora backend of the account (the operator's sentinel service).
NOT_UPSTREAM = ("sentinel",)
TERMINAL = list(JobState.TERMINAL)


@dataclass(frozen=True)
class InflightConfig:
    jobs: int
    accounts: int
    time_scale: float
    poll_interval: float
    timeout: float = 1800


def new_stack(services: Services, config: InflightConfig) -> Stack:
    """The simulator and the API; workers and beat are started per run."""
    stack = Stack(
        services, "bench-inflight", time_scale=config.time_scale, poll_interval=config.poll_interval
    )
    # The product's defaults, not the test suite's faster ones.
    for key in ("WORKER_CONCURRENCY", "SWEEP_INTERVAL_S", "REQUEUE_AFTER_S"):
        stack.env.pop(key, None)
    stack.env["LOG_LEVEL"] = "WARNING"
    stack.env["WORKER_SOFT_SHUTDOWN_TIMEOUT_S"] = "1"
    stack.start("sim", "api")
    return stack


async def create_jobs(stack: Stack, count: int, tag: str, parallel: int = 32) -> list[str]:
    gate = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=stack.client_headers()) as http:

        async def one(i: int) -> str:
            # A keep-alive connection the server closes as a request goes out fails that request; the
            # idempotency key makes sending it again safe.
            for attempt in range(3):
                try:
                    async with gate:
                        response = await http.post(
                            f"{stack.api_url}/v1/videos",
                            json={"model": "sora-2", "prompt": f"{tag} job {i}", "seconds": "10"},
                            headers={"Idempotency-Key": f"{tag}-{i}"},
                        )
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            response.raise_for_status()
            return response.json()["id"]

        return await asyncio.gather(*(one(i) for i in range(count)))


def wait_done(stack: Stack, ids: list[str], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        done = query(
            stack, "SELECT count(*) AS n FROM jobs WHERE id = ANY($1) AND state = ANY($2)", ids, TERMINAL
        )
        if done[0]["n"] == len(ids):
            return time.time()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{done[0]['n']}/{len(ids)} jobs ended after {timeout}s; logs in {stack.logs}")
        time.sleep(0.25)


def run(
    stack: Stack, config: InflightConfig, workers: int, tag: str, then: Callable[[Stack], None] | None = None
) -> dict:
    """One run; ``then`` is called with the workers and beat still up once every job has ended."""
    setup = time.time()
    seeded = asyncio.run(add_accounts(stack, config.accounts))
    before = stack.sim("GET", "/stats")["requests_by_route"]
    ids = asyncio.run(create_jobs(stack, config.jobs, tag))

    started = time.time()
    spawn(stack, "beat", "beat")
    keys = [f"worker{i}" for i in range(workers)]
    pods = [PodMemory(f"{stack.env['REDIS_PREFIX'].strip(':')}-{tag}-{key}") for key in keys]
    for i, key in enumerate(keys):
        spawn(stack, key, "worker", "-n", f"bench{i}@%h", pod=pods[i])
    for key in keys:
        wait_log(stack, key, " ready.")
    ready = time.time()
    roots = {key: stack.procs[key].pid for key in [*keys, "beat"]}
    # From here on: the start-up (imports, forks) is not the jobs' cost.
    cpu_at_ready = cpu_seconds(*(pid for key in keys for pid in tree_pids(roots[key])))
    try:
        with RssSampler(roots, pods=pods) as rss:
            finished = wait_done(stack, ids, config.timeout)
        worker_cpu = cpu_seconds(*(pid for key in keys for pid in tree_pids(roots[key]))) - cpu_at_ready
        if then is not None:
            then(stack)
    finally:
        # Every job has ended: nothing is left to hand back, so no soft shutdown to wait for. Beat stops
        # gracefully to give up its lock, which the next run's beat needs.
        for key in keys:
            stop(stack, key, sig=signal.SIGKILL)
        stop(stack, "beat")
        for pod in pods:
            pod.remove()
        # The next run gets a pool of its own.
        query(
            stack,
            "UPDATE accounts SET enabled = false WHERE id = ANY($1)",
            [a["gateway"]["id"] for a in seeded],
        )
    after = stack.sim("GET", "/stats")["requests_by_route"]
    requests = {r: after.get(r, 0) - before.get(r, 0) for r in after}
    requests = {r: n for r, n in sorted(requests.items()) if n}

    rows = query(
        stack,
        "SELECT id, state, upstream_task_id, submitted_at, completed_at FROM jobs WHERE id = ANY($1)",
        ids,
    )
    task_ids = {r["upstream_task_id"] for r in rows}
    tasks = [t for t in stack.sim("GET", "/tasks") if t["task_id"] in task_ids]
    by_task = {t["task_id"]: t for t in tasks}
    completed = [r for r in rows if r["state"] == "completed"]
    delays = [
        r["completed_at"].timestamp() - by_task[r["upstream_task_id"]]["draft_at"]
        for r in completed
        if r["upstream_task_id"] in by_task and by_task[r["upstream_task_id"]]["draft_at"]
    ]

    # Where the delay goes, job by job: from the draft's appearance to the drafts page that first listed it
    # (waiting for a poll), from there to the video's download (the finalize's hop through the queue) and
    # from there to the row's completion (the download and the writes). ``gap_polls`` is the share of jobs
    # whose first poll after the task left pending came before its draft appeared.
    split = _delay_split(completed, by_task)
    first_create = min((t["created_at"] for t in tasks), default=ready)

    # One pending request per busy account per tick, over the simulator's own minimum time for its jobs.
    per_account = Counter(t["account_id"] for t in tasks)
    interval = config.poll_interval
    slot_seconds = TASK_SLOT_SECONDS * config.time_scale
    pending_floor = sum(
        math.ceil(math.ceil(n / SLOTS) * slot_seconds / interval) for n in per_account.values()
    )
    # One pending request per job per interval, up to and including the first that finds it gone.
    pending_naive = sum(
        math.floor((t["left_pending_at"] - t["created_at"]) / interval) + 1
        for t in tasks
        if t["left_pending_at"] is not None
    )

    n_done = max(1, len(completed))
    upstream = {r: n for r, n in requests.items() if r not in NOT_UPSTREAM}
    floor = {
        "nf_create": len(ids),
        "pending": pending_floor,
        "drafts": len(ids),
        "media": DOWNLOADS_PER_JOB * len(ids),
    }
    naive = {**upstream, "pending": pending_naive, "drafts": len(ids)}
    total = sum(upstream.values())
    waves = math.ceil(config.jobs / (SLOTS * config.accounts))
    sim_minimum = (waves * TASK_SLOT_SECONDS + TASK_SECONDS - TASK_SLOT_SECONDS) * config.time_scale
    return {
        "jobs": len(ids),
        "accounts": config.accounts,
        "workers": workers,
        "time_scale": config.time_scale,
        "poll_interval_s": interval,
        "completed": len(completed),
        "failed": len(rows) - len(completed),
        "wall_s": round(finished - first_create, 2),
        "wall_from_start_s": round(finished - started, 2),
        "worker_startup_s": round(ready - started, 2),
        "setup_s": round(started - setup, 2),
        "readback_s": round(time.time() - finished, 2),
        "sim_minimum_s": round(sim_minimum, 2),
        "wall_over_minimum": round((finished - first_create) / sim_minimum, 2),
        "worker_peak_rss_mb": round(sum(rss.peak_mb[k] for k in keys), 1),
        "worker_peak_rss_mb_each": [round(rss.peak_mb[k], 1) for k in keys],
        "worker_peak_pss_mb": round(sum(rss.peak_pss_mb[k] for k in keys), 1),
        # Each pod's cgroup (None where the machine has no memory controller to make one): the largest pod.
        "worker_pod_peak_rss_mb": round(max(p.peak_rss_mb for p in pods), 1) if pods[0].available else None,
        "worker_pod_peak_usage_mb": round(max(p.peak_usage_mb for p in pods), 1)
        if pods[0].available
        else None,
        "worker_cpu_ms_per_job": round(worker_cpu * 1000 / max(1, len(ids)), 1),
        "beat_peak_rss_mb": round(rss.peak_mb["beat"], 1),
        "requests_by_route": requests,
        "requests_per_job": {r: round(n / n_done, 3) for r, n in upstream.items()},
        "requests_per_job_total": round(total / n_done, 3),
        "floor_per_job": {r: round(n / n_done, 3) for r, n in floor.items()},
        "floor_per_job_total": round(sum(floor.values()) / n_done, 3),
        "over_floor": round(total / sum(floor.values()), 3),
        "naive_pending": pending_naive,
        "naive_per_job_total": round(sum(naive.values()) / n_done, 3),
        "naive_over_actual_pending": round(pending_naive / max(1, upstream.get("pending", 0)), 2),
        "naive_over_actual_total": round(sum(naive.values()) / max(1, total), 2),
        "delay_p50_s": round(percentile(delays, 0.50), 3),
        "delay_p99_s": round(percentile(delays, 0.99), 3),
        "delay_max_s": round(max(delays, default=float("nan")), 3),
        "delay_target_s": round(interval + 1, 3),
        "delay_split": split,
        "delays_s": [round(d, 3) for d in sorted(delays)],
        "delay_by_time": _delay_by_time(completed, by_task, first_create),
    }


def _delay_by_time(
    completed: list[dict], by_task: dict[str, dict], start: float, bucket_s: float = 10.0
) -> list[dict[str, float]]:
    """The delay by when the draft was ready, in ``bucket_s`` buckets from the first create: when in the run
    the slow completions happened (the end of a wave of videos, or all along)."""
    buckets: dict[int, list[float]] = {}
    for row in completed:
        draft_at = (by_task.get(row["upstream_task_id"]) or {}).get("draft_at")
        if draft_at is not None:
            delay = row["completed_at"].timestamp() - draft_at
            buckets.setdefault(int((draft_at - start) // bucket_s), []).append(delay)
    return [
        {
            "from_s": index * bucket_s,
            "jobs": len(values),
            "p50_s": round(percentile(values, 0.50), 3),
            "p99_s": round(percentile(values, 0.99), 3),
            "max_s": round(max(values), 3),
        }
        for index, values in sorted(buckets.items())
    ]


def _delay_split(completed: list[dict], by_task: dict[str, dict]) -> dict[str, float]:
    parts: dict[str, list[float]] = {"to_listed": [], "to_download": [], "to_completed": []}
    gap = 0
    for row in completed:
        task = by_task.get(row["upstream_task_id"])
        marks = [(task or {}).get(k) for k in ("draft_at", "draft_listed_at", "media_fetched_at")]
        if task is None or None in marks:
            continue
        marks.append(row["completed_at"].timestamp())
        for key, start, end in zip(parts, marks, marks[1:], strict=False):
            parts[key].append(end - start)
        seen = task.get("gone_seen_at")
        gap += seen is not None and seen < task["draft_at"]
    split = {
        f"{key}_{name}_s": round(percentile(values, q), 3)
        for key, values in parts.items()
        for name, q in (("p50", 0.50), ("p99", 0.99))
    }
    split["gap_polls"] = round(gap / max(1, len(parts["to_listed"])), 3)
    return split
