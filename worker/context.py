"""Per-process resources for the worker: built lazily in each Celery child.

A prefork child gets its own event loop, database pool, Redis client and HTTP
clients the first time it runs a task; nothing is created at import time or
shared across processes or loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Celery

from shared.resources import Resources
from shared.settings import Settings

# The engine's functions take the worker's resources as ``ctx``.
Context = Resources

T = TypeVar("T")


class Runtime:
    """One event loop and one set of Resources per process."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._runner: asyncio.Runner | None = None
        self._context: Resources | None = None

    def run(self, factory: Any, *args: Any) -> Any:
        """Runs ``factory(context, *args)`` (a coroutine function) to completion on this process's loop."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._context is None:
            self._context = Resources.build(self._settings, self._celery, db_pool_size=2)
        coroutine: Coroutine[Any, Any, T] = factory(self._context, *args)
        return self._runner.run(coroutine)

    def close(self) -> None:
        if self._runner is not None:
            if self._context is not None:
                self._runner.run(self._context.aclose())
            self._runner.close()
        self._runner = None
        self._context = None
