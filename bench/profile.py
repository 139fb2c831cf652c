"""`python -m bench.profile {worker|api}`: the in-flight or accept workload, one process under pyinstrument.

``worker`` runs the in-flight jobs on a single worker process with the solo pool (every task in the profiled
process, so the profile shows the per-task cost that prefork children pay); ``api`` drives saturation
against one API process. The report is written as text next to the other results.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import accept, inflight
from bench.common import add_accounts, spawn, stop, wait_http, wait_log
from tests.e2e.stack import Stack, free_port
from tests.infra import ROOT, Services


def _profiled(stack: Stack, key: str, module_argv: list[str], out: Path, env: dict[str, str]) -> None:
    log = open(stack.logs / f"{key}.log", "ab")  # noqa: SIM115 (the child owns it)
    argv = [sys.executable, "-m", "pyinstrument", "-r", "session", "-o", str(out), *module_argv]
    stack.procs[key] = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**stack.env, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own process group, so that Stack.stop ends it if the run fails half-way.
        start_new_session=True,
    )


def _finish(stack: Stack, key: str, session: Path, out_dir: Path, name: str) -> None:
    proc = stack.procs.pop(key)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    # Text only: the HTML of a run this long is tens of megabytes.
    options = ["-p", "show_all=false", "-p", "time=percent_of_total"]
    report = out_dir / f"profile-{name}.txt"
    argv = [sys.executable, "-m", "pyinstrument", "--load", str(session), "-r", "text", *options]
    subprocess.run([*argv, "-o", str(report)], check=True)


def profile_worker(services: Services, config: inflight.InflightConfig, out_dir: Path) -> None:
    stack = inflight.new_stack(services, config)
    session = Path(tempfile.mkdtemp()) / "worker.pyisession"
    try:
        asyncio.run(add_accounts(stack, config.accounts))
        ids = asyncio.run(inflight.create_jobs(stack, config.jobs, "profile"))
        spawn(stack, "beat", "beat")
        _profiled(stack, "worker", ["-m", "worker", "--loglevel=INFO", "--pool=solo"], session, {})
        wait_log(stack, "worker", " ready.")
        started = time.time()
        inflight.wait_done(stack, ids, config.timeout)
        print(f"{len(ids)} jobs in {time.time() - started:.1f} s", file=sys.stderr)
        _finish(stack, "worker", session, out_dir, "worker")
        stop(stack, "beat")
    finally:
        stack.stop()
        shutil.rmtree(session.parent, ignore_errors=True)


def profile_api(services: Services, config: accept.AcceptConfig, out_dir: Path) -> None:
    stack = Stack(services, "bench-profile-api")
    session = Path(tempfile.mkdtemp()) / "api.pyisession"
    try:
        stack.start("sim")
        port = free_port()
        stack.api_url = f"http://127.0.0.1:{port}"
        _profiled(stack, "api", ["-m", "api"], session, {"PORT": str(port)})
        wait_http(f"{stack.api_url}/readyz")
        asyncio.run(add_accounts(stack, 1))
        rows = asyncio.run(accept.measure_urls(stack, [f"{stack.api_url}/v1/videos"], [], config))
        print(rows, file=sys.stderr)
        _finish(stack, "api", session, out_dir, "api")
    finally:
        stack.stop()
        shutil.rmtree(session.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=("worker", "api"))
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--accounts", type=int, default=12)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    services = Services()
    try:
        if args.target == "worker":
            config = inflight.InflightConfig(
                jobs=args.jobs,
                accounts=args.accounts,
                time_scale=args.time_scale,
                poll_interval=args.poll_interval,
            )
            profile_worker(services, config, args.out)
        else:
            config = accept.AcceptConfig(rate=100, concurrency=32, duration=args.duration, warmup=1.0)
            profile_api(services, config, args.out)
    finally:
        services.close()


if __name__ == "__main__":
    main()
