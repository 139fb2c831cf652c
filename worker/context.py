"""Per-process resources for the worker: built lazily in each Celery child.

A prefork child gets its own event loop, database pool, Redis client and HTTP
clients the first time it runs a task; nothing is created at import time or
shared across processes or loops.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

from celery import Celery

from shared.resources import Resources
from shared.settings import Settings

# The engine's functions take the worker's resources as ``ctx``.
Context = Resources


class Runtime:
    """One event loop and one set of Resources per process."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._runner: asyncio.Runner | None = None
        self._context: Resources | None = None

    def run(self, factory: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Runs ``factory(context, *args)`` to completion on this process's event loop."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._context is None:
            self._context = Resources.build(
                self._settings,
                self._celery,
                # Eight connections at most, all kept once opened: at a wave's end a poll's accounts want that
                # many at once, and overflow connections were opened and closed again all along (connect,
                # SSL request, statements prepared anew, a new Postgres backend each: six a second).
                db_pool_size=8,
                db_max_overflow=0,
                synchronous_commit=self._settings.worker_synchronous_commit,
            )
        # A context of its own per task: what the task binds for its log lines ends with it.
        return self._runner.run(factory(self._context, *args), context=contextvars.copy_context())

    def close(self) -> None:
        if self._runner is not None:
            if self._context is not None:
                self._runner.run(self._context.aclose())
            self._runner.close()
        self._runner = None
        self._context = None
