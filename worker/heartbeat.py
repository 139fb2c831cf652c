"""A heartbeat file for the worker's liveness probe.

The worker's main process touches the file on its own event loop's timer, the loop that also consumes
from the broker and hands tasks to the pool. A wedged main process stops touching it, and the probe
(``find FILE -mmin -1``) sees the file age. Unlike ``celery inspect ping`` the probe costs no broker
round trip and no Python start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)


def touch(path: Path) -> None:
    try:
        path.touch()
    except OSError as exc:
        log.warning("heartbeat file %s: %s", path, exc)


class Heartbeat(bootsteps.StartStopStep):
    """Worker bootstep: touches ``path`` every ``interval_s`` while the worker runs, removes it on stop."""

    requires = ("celery.worker.components:Timer",)
    path: Path = Path("/tmp/worker-heartbeat")
    interval_s: float = 10.0

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_entry: Any = None

    def start(self, parent: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        touch(self.path)
        self._timer_entry = parent.timer.call_repeatedly(self.interval_s, touch, (self.path,), priority=10)

    def stop(self, parent: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None
        self.path.unlink(missing_ok=True)

    terminate = stop


def heartbeat_step(path: str, interval_s: float) -> type[Heartbeat]:
    """The step class for ``app.steps["worker"]``, bound to one file and interval."""
    return type(
        "Heartbeat", (Heartbeat,), {"path": Path(path), "interval_s": interval_s, "__module__": __name__}
    )
