"""The one clock that drives every phase, gap, quota window and timestamp the simulator emits.

It reads as real epoch time plus an offset that only the control API moves, so timestamps stay comparable
with the gateway's wall clock until a test advances time. In manual mode the real part is frozen at start-up,
which makes every state a pure function of the control calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SimClock:
    def __init__(self, mode: str = "real", wall: Callable[[], float] = time.time) -> None:
        self.mode = mode
        self._wall = wall
        self._frozen_at = wall()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            base = self._frozen_at if self.mode == "manual" else self._wall()
            return base + self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        # Time never runs backwards: tasks, tokens and quota windows assume a monotonic clock.
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()
