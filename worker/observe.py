"""The worker's logs and metrics, hooked into Celery's signals.

Logs: Celery sets up its handlers, then ours formats them (text, or JSON with ``LOG_FORMAT=json``) and
every line carries the task, and the job and account the task binds (``worker.tasks``, the engine).

Metrics: with ``WORKER_METRICS_PORT`` set, the main process switches prometheus_client to multiprocess
mode before it forks its pool, serves ``/metrics`` (the sum over all its children) on that port, and
drops a child's live gauges when the child exits. Task durations are measured in the children.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import signals
from prometheus_client import start_http_server

from shared import logs, metrics
from shared.settings import Settings

log = logging.getLogger(__name__)


class Observer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.json = settings.log_format.lower() == "json"
        self._server: tuple[WSGIServer, Thread] | None = None
        self._own_dir: str | None = None
        # task id -> (start, contextvar tokens, running-gauge child) of the tasks this process runs now.
        self._running: dict[str, tuple[float, list[Any], Any]] = {}

    def connect(self) -> None:
        logs.install_record_factory()
        # weak=False: these are bound methods of an object nothing else keeps.
        signals.after_setup_logger.connect(self._on_logger, weak=False)
        signals.after_setup_task_logger.connect(self._on_logger, weak=False)
        signals.celeryd_after_setup.connect(self._on_after_setup, weak=False)
        signals.worker_init.connect(self._on_worker_init, weak=False)
        signals.worker_ready.connect(self._on_worker_ready, weak=False)
        signals.worker_shutdown.connect(self._on_worker_shutdown, weak=False)
        signals.worker_process_shutdown.connect(self._on_child_exit, weak=False)
        signals.task_prerun.connect(self._on_task_start, weak=False)
        signals.task_postrun.connect(self._on_task_end, weak=False)

    # Logs -------------------------------------------------------------------------------------

    def _on_logger(self, logger: logging.Logger, **_: Any) -> None:
        logs.use_format(logger.handlers, self.settings.log_format)

    def _on_after_setup(self, instance: Any, **_: Any) -> None:
        # Celery's banner is many lines of text on stdout: a log collector reading JSON gets none of it.
        if self.json:
            instance.quiet = True

    # Metrics ----------------------------------------------------------------------------------

    def _on_worker_init(self, **_: Any) -> None:
        """In the main process, before the pool's children are forked."""
        port = self.settings.worker_metrics_port
        if not port:
            return
        path = self.settings.worker_metrics_dir or metrics.multiprocess_dir()
        if not path:
            path = self._own_dir = tempfile.mkdtemp(prefix="sora-gateway-metrics-")
        metrics.use_multiprocess(path)
        registry = metrics.multiprocess_registry(path)
        self._server = start_http_server(port, addr=self.settings.worker_metrics_host, registry=registry)

    def _on_worker_ready(self, **_: Any) -> None:
        if self._server is not None:  # said now: logging is not set up yet when the server starts
            host, port = self._server[0].server_address[:2]
            log.info("worker metrics on http://%s:%s/metrics", host, port)

    def _on_worker_shutdown(self, **_: Any) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._server = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def _on_child_exit(self, pid: int | None = None, **_: Any) -> None:
        metrics.mark_process_dead(pid or os.getpid())

    def _on_task_start(self, task_id: str, task: Any, **_: Any) -> None:
        tokens = [logs.task_name.set(task.name), logs.task_id.set(task_id)]
        running = metrics.TASKS_RUNNING.labels(task.name)
        running.inc()
        self._running[task_id] = (time.perf_counter(), tokens, running)

    def _on_task_end(self, task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
        entry = self._running.pop(task_id, None)
        if entry is None:
            return
        started, tokens, running = entry
        running.dec()
        outcome = (state or "unknown").lower()
        metrics.TASK_DURATION.labels(task.name, outcome).observe(time.perf_counter() - started)
        for token in reversed(tokens):
            token.var.reset(token)
