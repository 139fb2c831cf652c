"""One PNG per scenario (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROUTES = ("nf_create", "pending", "drafts", "media", "nf_check")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accept(rows: list[dict], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{r['api_processes']} API\n{r['mode']}" for r in rows]
    left.bar(labels, [r["rps"] for r in rows], color="tab:blue")
    left.axhline(1500, color="tab:red", linestyle="--", label="target 1,500/s")
    left.set_ylabel("accepted creates per second")
    left.legend()
    width = 0.25
    xs = range(len(rows))
    for offset, key in zip((-width, 0, width), ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        right.bar([x + offset for x in xs], [r[key] for r in rows], width, label=key.removesuffix("_ms"))
    right.axhline(50, color="tab:red", linestyle="--", label="p99 target 50 ms")
    right.set_xticks(list(xs), labels)
    right.set_yscale("log")
    right.set_ylabel("latency (ms, log)")
    right.legend()
    fig.suptitle("Accept: POST /v1/videos")
    return _save(fig, path)


def _route_bars(ax: plt.Axes, columns: dict[str, dict[str, float]]) -> None:
    bottoms = [0.0] * len(columns)
    for route in ROUTES:
        heights = [col.get(route, 0.0) for col in columns.values()]
        ax.bar(list(columns), heights, bottom=bottoms, label=route)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylabel("upstream requests per completed job")
    ax.legend(fontsize=8)


def inflight(result: dict, path: Path) -> Path:
    fig, (left, right, late) = plt.subplots(1, 3, figsize=(16, 4))
    _route_bars(left, {"measured": result["requests_per_job"], "floor": result["floor_per_job"]})
    left.set_title(f"{result['over_floor']}x the floor (target 1.3x)")
    delays = result["delays_s"]
    right.hist(delays, bins=40, color="tab:blue")
    right.axvline(result["delay_target_s"], color="tab:red", linestyle="--", label="target (interval + 1 s)")
    right.axvline(result["delay_p99_s"], color="black", linestyle=":", label="p99")
    right.set_xlabel("simulator draft ready → client sees completed (s)")
    right.set_ylabel("jobs")
    right.legend()
    by_time = result.get("delay_by_time") or []
    starts = [b["from_s"] for b in by_time]
    for key, style in (("p50_s", "-"), ("p99_s", "--"), ("max_s", ":")):
        late.plot(starts, [b[key] for b in by_time], style, label=key.removesuffix("_s"))
    late.axhline(result["delay_target_s"], color="tab:red", linestyle="--", linewidth=0.8)
    late.set_xlabel("draft ready, s after the first create")
    late.set_ylabel("delay (s)")
    late.legend()
    fig.suptitle(
        f"In flight: {result['completed']}/{result['jobs']} jobs on {result['accounts']} accounts, "
        f"wall {result['wall_s']} s vs minimum {result['sim_minimum_s']} s"
    )
    return _save(fig, path)


def polling(result: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    actual_pending = result["requests_by_route"].get("pending", 0)
    left.bar(
        ["per-account ticks\n(this gateway)", "one poll per job\n(naive)"],
        [actual_pending, result["naive_pending"]],
    )
    left.set_ylabel("pending requests")
    left.set_title(f"{result['naive_over_actual_pending']}x fewer pending polls")
    naive = {**result["requests_per_job"], "pending": result["naive_pending"] / max(1, result["completed"])}
    naive["drafts"] = 1.0
    _route_bars(right, {"this gateway": result["requests_per_job"], "naive": naive})
    right.set_title(f"all upstream requests: naive {result['naive_over_actual_total']}x")
    fig.suptitle("Polling efficiency (naive counts computed from the same run's task timings)")
    return _save(fig, path)


def streaming(result: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    quantiles = result.get("latencies_ms") or []
    if quantiles:
        left.plot(quantiles, [q / (len(quantiles) - 1) for q in range(len(quantiles))])
    left.axvline(100, color="tab:red", linestyle="--", label="p99 target 100 ms")
    left.set_xscale("log")
    left.set_xlabel("publish → client (ms, log)")
    left.set_ylabel("share of events")
    left.legend()
    right.bar(
        ["before the streams", f"{result['streams']} streams open"],
        [result["api_redis_connections_before"], result["api_redis_connections_while_open"]],
    )
    right.set_ylabel("the API process's Redis connections")
    fig.suptitle(
        f"Streaming: {result['streams']} streams, p99 {result['latency_p99_ms']} ms, "
        f"API peak RSS {result['api_peak_rss_mb']} MB"
    )
    return _save(fig, path)


def scaling(results: list[dict], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    workers = [r["workers"] for r in results]
    left.plot(workers, [r["wall_s"] for r in results], marker="o", label="wall time")
    left.axhline(results[0]["sim_minimum_s"], color="tab:red", linestyle="--", label="simulator minimum")
    left.set_xlabel("worker processes (pods)")
    left.set_ylabel("seconds")
    left.set_xticks(workers)
    left.legend()
    right.plot(workers, [r["requests_per_job_total"] for r in results], marker="o", label="measured")
    right.plot(workers, [r["floor_per_job_total"] for r in results], marker="o", label="floor")
    right.set_xlabel("worker processes (pods)")
    right.set_ylabel("upstream requests per job")
    right.set_xticks(workers)
    right.set_ylim(bottom=0)
    right.legend()
    fig.suptitle(f"Scaling: {results[0]['jobs']} jobs on {results[0]['accounts']} accounts")
    return _save(fig, path)
