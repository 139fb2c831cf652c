"""`python -m bench [--quick | --smoke]`: every scenario of the benchmark suite against the real stack.

Prints a table of figures against their targets, writes it all as JSON and draws one PNG per scenario into
``--out`` (bench/results/ by default). Sizes, time scale and account count are options; ``--quick`` and
``--smoke`` only change their defaults.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import accept, charts, inflight, sse_fanout
from bench.common import exit_on_sigterm, machine
from tests.e2e.stack import Stack
from tests.infra import ROOT, Services

SCENARIOS = ("accept", "inflight", "polling", "streaming", "scaling")

PRESETS: dict[str, dict] = {
    "full": {
        "accept_rate": 1500,
        "accept_concurrency": 64,
        "accept_duration": 10.0,
        "jobs": 10_000,
        "accounts": 1_000,
        "time_scale": 1.0,
        "poll_interval": 3.0,
        "workers": "1,2,4",
        "streams": 2_000,
        "stream_jobs": 30,
        "stream_time_scale": 0.3,
        "one_stack": False,
        "streams_on_one_stack": False,
    },
    "quick": {
        "accept_rate": 500,
        "accept_concurrency": 32,
        "accept_duration": 1.5,
        "jobs": 90,
        "accounts": 9,
        "time_scale": 0.02,
        "poll_interval": 0.5,
        # Four pods' start-ups alone take 13 s here: 1,2,4 with `--workers 1,2,4` or the full mode.
        "workers": "1,2",
        "streams": 200,
        "stream_jobs": 6,
        "stream_time_scale": 0.05,
        "one_stack": True,
        "streams_on_one_stack": False,
    },
    "smoke": {
        "accept_rate": 40,
        "accept_concurrency": 8,
        "accept_duration": 0.5,
        "jobs": 6,
        "accounts": 2,
        "time_scale": 0.01,
        "poll_interval": 0.3,
        "workers": "1,2",
        "streams": 10,
        "stream_jobs": 1,
        "stream_time_scale": 0.01,
        "one_stack": True,
        "streams_on_one_stack": True,
    },
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="under 2 minutes")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="mode", help="smallest sizes")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    parser.add_argument("--accept-rate", type=float, help="fixed offered rate (requests/s)")
    parser.add_argument("--accept-concurrency", type=int, help="clients at saturation")
    parser.add_argument("--accept-duration", type=float, help="seconds per accept measurement")
    parser.add_argument("--jobs", type=int, help="video jobs in flight")
    parser.add_argument("--accounts", type=int, help="simulated accounts (3 slots each)")
    parser.add_argument("--time-scale", type=float, help="SIM_TIME_SCALE: 1.0 is upstream's ~113 s per video")
    parser.add_argument("--poll-interval", type=float, help="POLL_INTERVAL_S")
    parser.add_argument("--workers", help="worker processes (pods) for scaling, e.g. 1,2,4")
    parser.add_argument("--streams", type=int, help="concurrent event streams")
    parser.add_argument("--stream-jobs", type=int, help="jobs the streams follow")
    parser.add_argument("--stream-time-scale", type=float, help="SIM_TIME_SCALE of the streaming stack")
    parser.add_argument(
        "--one-stack",
        action=argparse.BooleanOptionalAction,
        help="accept and in flight on one stack (quick and smoke default)",
    )
    parser.add_argument(
        "--streams-on-one-stack",
        action=argparse.BooleanOptionalAction,
        help="streaming too, at the in-flight time scale (smoke default)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where results go")
    args = parser.parse_args(argv)
    args.mode = args.mode or "full"
    for key, value in PRESETS[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    args.workers = [int(w) for w in args.workers.split(",")]
    return args


def _split(split: dict[str, float]) -> str:
    steps = ("to_listed", "to_download", "to_completed")
    parts = [f"{split[f'{step}_p50_s']}, {split[f'{step}_p99_s']}" for step in steps]
    return " / ".join(parts) + f" s; {split['gap_polls']:.0%} polled in the gap"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _pod_memory(r: dict) -> tuple[str, str, str, str, str]:
    """The pod's peak RSS as its memory cgroup counts it (each page once); where no cgroup could be made,
    the processes' PSS, which counts shared pages the same way."""
    if r.get("worker_pod_peak_rss_mb") is not None:
        figure = (
            f"{r['worker_pod_peak_rss_mb']} MB (usage with page cache {r['worker_pod_peak_usage_mb']} MB)"
        )
        return (
            "in flight",
            "worker pod peak RSS (cgroup)",
            figure,
            "< 512 MB",
            _met(r["worker_pod_peak_rss_mb"] < 512),
        )
    figure = f"{r['worker_peak_pss_mb']} MB (PSS; no memory cgroup here)"
    return ("in flight", "worker pod peak RSS (PSS)", figure, "< 512 MB", _met(r["worker_peak_pss_mb"] < 512))


def _table(results: dict) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for r in results.get("accept", []):
        name = f"accept, {r['api_processes']} API, {r['mode']}"
        # Throughput is judged at saturation; latency at the offered rate of 1,500/s (at saturation it
        # only measures the queue the closed-loop clients keep full).
        if r["mode"] == "saturation":
            target, target_ok = ">= 1,500/s", r["rps"] >= 1500
        else:
            offered = r["offered_rps"] or 0
            kept_up = r["rps"] >= 0.98 * offered and not r["errors"]
            target = "1,500/s answered, p99 < 50 ms"
            target_ok = kept_up and r["p99_ms"] < 50 if offered >= 1500 else None
        rate = f"{r['rps']:.0f}/s" + (f" of {r['offered_rps']:.0f}/s offered" if r["offered_rps"] else "")
        latency = f"p50 {r['p50_ms']} / p95 {r['p95_ms']} / p99 {r['p99_ms']} ms"
        rows.append((name, "rps; latency", f"{rate}; {latency}", target, _met(target_ok)))
    if "inflight" in results:
        r = results["inflight"]
        rows += [
            (
                "in flight",
                "completed",
                f"{r['completed']}/{r['jobs']}",
                "all",
                _met(r["completed"] == r["jobs"]),
            ),
            (
                "in flight",
                "wall vs simulator minimum",
                f"{r['wall_s']} s vs {r['sim_minimum_s']} s ({r['wall_over_minimum']}x)",
                "-",
                "-",
            ),
            _pod_memory(r),
            (
                "in flight",
                "worker processes' peak RSS summed; PSS",
                f"{r['worker_peak_rss_mb']} MB; {r['worker_peak_pss_mb']} MB",
                "-",
                "-",
            ),
            ("in flight", "worker CPU per job", f"{r['worker_cpu_ms_per_job']} ms", "-", "-"),
            ("in flight", "beat peak RSS", f"{r['beat_peak_rss_mb']} MB", "-", "-"),
            (
                "in flight",
                "upstream requests per job",
                ", ".join(f"{k} {v}" for k, v in r["requests_per_job"].items())
                + f" = {r['requests_per_job_total']}",
                f"<= 1.3 x floor {r['floor_per_job_total']}",
                _met(r["over_floor"] <= 1.3),
            ),
            (
                "in flight",
                "completion delay p50 / p99",
                f"{r['delay_p50_s']} / {r['delay_p99_s']} s",
                f"p99 < {r['delay_target_s']} s",
                _met(r["delay_p99_s"] < r["delay_target_s"]),
            ),
            (
                "in flight",
                "delay: to the drafts read / download / completed (p50, p99)",
                _split(r["delay_split"]),
                "-",
                "-",
            ),
        ]
    if "polling" in results:
        r = results["polling"]
        rows += [
            (
                "polling",
                "pending requests: gateway vs naive",
                f"{r['requests_by_route'].get('pending', 0)} vs {r['naive_pending']} "
                f"({r['naive_over_actual_pending']}x)",
                "-",
                "-",
            ),
            (
                "polling",
                "all upstream requests per job",
                f"{r['requests_per_job_total']} vs {r['naive_per_job_total']} "
                f"({r['naive_over_actual_total']}x)",
                "-",
                "-",
            ),
        ]
    if "streaming" in results:
        r = results["streaming"]
        rows += [
            (
                "streaming",
                "delivery latency p50 / p99",
                f"{r['latency_p50_ms']} / {r['latency_p99_ms']} ms ({r['streams']} streams)",
                "p99 < 100 ms",
                _met(r["latency_p99_ms"] < 100),
            ),
            (
                "streaming",
                "API peak RSS",
                f"{r['api_peak_rss_mb']} MB",
                "< 1 GB",
                _met(r["api_peak_rss_mb"] < 1024),
            ),
            (
                "streaming",
                "API's Redis connections before / open",
                f"{r['api_redis_connections_before']} / {r['api_redis_connections_while_open']}",
                "independent of streams",
                # A pub/sub connection and a small command pool, whatever the number of streams.
                _met(r["api_redis_connections_while_open"] - r["api_redis_connections_before"] <= 5),
            ),
        ]
    for r in results.get("scaling", []):
        rows.append(
            (
                f"scaling, {r['workers']} worker(s)",
                "wall; requests per job; delay p99",
                f"{r['wall_s']} s; {r['requests_per_job_total']}; {r['delay_p99_s']} s",
                "-",
                "-",
            )
        )
    return rows


def _print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("scenario", "figure", "measured", "target", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _stream_on(results: dict, timings: dict, streams: int, jobs: int, stack: Stack) -> None:
    start = time.monotonic()
    results["streaming"] = sse_fanout.run_on(stack, streams, jobs)
    timings["streaming"] = time.monotonic() - start


def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    exit_on_sigterm()
    args.out.mkdir(parents=True, exist_ok=True)
    services = Services()
    results: dict = {}
    timings: dict[str, float] = {}
    figures: dict[str, str] = {}
    config = inflight.InflightConfig(
        jobs=args.jobs, accounts=args.accounts, time_scale=args.time_scale, poll_interval=args.poll_interval
    )
    began = time.monotonic()
    machine_before = machine()
    accept_config = accept.AcceptConfig(
        rate=args.accept_rate,
        concurrency=args.accept_concurrency,
        duration=args.accept_duration,
        warmup=min(2.0, args.accept_duration / 2),
    )
    wanted = {"inflight", "polling", "scaling"} & set(args.scenarios)
    counts = set(args.workers) if "scaling" in wanted else set()
    if wanted & {"inflight", "polling"}:
        counts.add(1)
    # One stack for several scenarios saves start-ups; streams on it follow jobs at the in-flight clock.
    use_shared = args.one_stack and ("accept" in args.scenarios or wanted)
    shared = inflight.new_stack(services, config) if use_shared else None
    try:
        if "accept" in args.scenarios:
            start = time.monotonic()
            if shared is not None:
                results["accept"] = accept.measure(shared, accept_config)
            else:
                results["accept"] = accept.run(services, accept_config)
            figures["accept"] = str(charts.accept(results["accept"], args.out / "accept.png"))
            timings["accept"] = time.monotonic() - start
        if wanted:
            start = time.monotonic()
            stack = shared or inflight.new_stack(services, config)
            try:
                order = sorted(counts)
                runs = {}
                for n in order:
                    # On one stack the streams follow jobs of the last run's workers, saving a start-up.
                    then = None
                    if (
                        shared is not None
                        and args.streams_on_one_stack
                        and "streaming" in args.scenarios
                        and n == order[-1]
                    ):
                        then = functools.partial(_stream_on, results, timings, args.streams, args.stream_jobs)
                    runs[n] = inflight.run(stack, config, n, f"w{n}", then)
            finally:
                if shared is None:
                    stack.stop()
            if 1 in runs and wanted & {"inflight", "polling"}:
                results["inflight"] = runs[1]
                results["polling"] = runs[1]
                if "inflight" in wanted:
                    figures["inflight"] = str(charts.inflight(runs[1], args.out / "inflight.png"))
                if "polling" in wanted:
                    figures["polling"] = str(charts.polling(runs[1], args.out / "polling.png"))
            if "scaling" in wanted:
                results["scaling"] = [runs[n] for n in sorted(args.workers)]
                figures["scaling"] = str(charts.scaling(results["scaling"], args.out / "scaling.png"))
            timings["inflight+scaling"] = time.monotonic() - start
        if "streaming" in args.scenarios:
            start = time.monotonic()
            if "streaming" not in results:
                results["streaming"] = sse_fanout.run(
                    services,
                    args.streams,
                    args.stream_jobs,
                    time_scale=args.stream_time_scale,
                    poll_interval=max(0.2, args.poll_interval),
                )
            figures["streaming"] = str(charts.streaming(results["streaming"], args.out / "streaming.png"))
            timings.setdefault("streaming", time.monotonic() - start)
    finally:
        if shared is not None:
            shared.stop()
        services.close()
    timings["total"] = time.monotonic() - began

    rows = _table(results)
    _print_table(rows)
    report = {
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": args.mode,
        "machine": machine_before,
        "loadavg_1m_after": machine()["loadavg_1m"],
        "parameters": {k: v for k, v in vars(args).items() if k not in ("out", "scenarios")},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "table": [
            dict(zip(("scenario", "figure", "measured", "target", "met"), r, strict=True)) for r in rows
        ],
        "figures": figures,
        "results": results,
    }
    path = args.out / f"bench-{args.mode}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{timings['total']:.0f} s; written to {path} and {len(figures)} charts", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
