"""Prometheus metrics: every name and label in one place (dashboards and alerts depend on them).

Counters, histograms and gauges recorded as things happen live here. What is read at scrape time
from Postgres and Redis (jobs by state, the account pool) is built by the API's ``/metrics`` handler.

Prefork processes: a Celery worker's children each count for themselves. The worker's main process
switches prometheus_client to its multiprocess mode before it forks them (``use_multiprocess``): each
child writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and the main process serves their sum
(``multiprocess_registry``). Every metric has labels, so no value exists before that switch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector

NAMESPACE = "sora_gateway"

# A "_created" twin of every counter and histogram doubles the series and tells a scraper nothing.
disable_created_metrics()

# The API ------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    f"{NAMESPACE}_http_requests_total",
    "HTTP requests answered, by method, route template (ids never appear) and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    f"{NAMESPACE}_http_request_duration_seconds",
    "Time to answer an HTTP request (event streams excluded: they last as long as their job), by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600),
)
SSE_STREAMS = Gauge(
    f"{NAMESPACE}_sse_streams_open",
    "Server-Sent Event streams open now: video_events (/v1/videos/{id}/events) and chat (stream=true).",
    ["stream"],
    multiprocess_mode="livesum",
)

# The upstream (the workers, and the API's query routes) --------------------------------------------

UPSTREAM_REQUESTS = Counter(
    f"{NAMESPACE}_upstream_requests_total",
    "Requests to the Sora upstream, by route template, HTTP status class (2xx, 4xx, 5xx; none when no "
    "answer came) and outcome (ok, or the error class: rate_limited, token_invalid, timeout, ...).",
    ["route", "status_class", "outcome"],
)
UPSTREAM_DURATION = Histogram(
    f"{NAMESPACE}_upstream_request_duration_seconds",
    "Time until the upstream answered (or failed), by route template.",
    ["route"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)

# Celery tasks and account leases (the workers) ------------------------------------------------------

TASK_DURATION = Histogram(
    f"{NAMESPACE}_task_duration_seconds",
    "Celery task run time, by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TASKS_RUNNING = Gauge(
    f"{NAMESPACE}_tasks_running",
    "Celery tasks running now in this worker's processes, by task name.",
    ["task"],
    multiprocess_mode="livesum",
)
LEASE_OPERATIONS = Counter(
    f"{NAMESPACE}_lease_operations_total",
    "Account slot leases by job kind and operation: acquired, full (no account had a free slot), "
    "released, renewed (slots kept by a poll tick).",
    ["kind", "op"],
)


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "none"


# Multiprocess mode --------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def use_multiprocess(path: str | Path) -> None:
    """Values from now on go to files under ``path``, one set per process; ``path`` starts empty.

    Called once in a worker's main process before it forks its children (they inherit the setting).
    prometheus_client picks its value class when it is imported, from PROMETHEUS_MULTIPROC_DIR; here
    the variable is set and the class picked again, since the decision is made after the import.
    """
    directory = Path(path)
    if directory.exists():
        for entry in directory.iterdir():  # the files of an earlier run would add to this one's counts
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.get_value_class()


def mark_process_dead(pid: int) -> None:
    """Drops a finished process's live gauges (tasks running, open streams); its counts stay."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class _LiveProcesses(Collector):
    """The multiprocess sum, after dropping the live gauges of processes that died without a goodbye
    (a child killed by the OOM killer or a time limit runs no shutdown hook)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._inner = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self):  # type: ignore[no-untyped-def]
        for file in Path(self._path).glob("gauge_live*_*.db"):
            pid = file.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid), self._path)
        return self._inner.collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_registry(path: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LiveProcesses(path))
    return registry
