"""The console's Jinja2 environment (autoescaped, strict about undefined names) and its filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# The vendored htmx (static/VENDORED.md says where it came from).
HTMX = "htmx-2.0.11.min.js"


def when(epoch: int | float | None) -> str:
    """A moment in UTC, to the minute: ``2026-01-31 14:05``."""
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def iso(epoch: int | float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def relative(epoch: int | float | None, now: float | None = None) -> str:
    """``in 3 h`` or ``5 min ago``."""
    if epoch is None:
        return "—"
    delta = epoch - (time.time() if now is None else now)
    seconds = abs(delta)
    if seconds < 60:
        amount = f"{int(seconds)} s"
    elif seconds < 3600:
        amount = f"{int(seconds // 60)} min"
    elif seconds < 2 * 86400:
        amount = f"{int(seconds // 3600)} h"
    else:
        amount = f"{int(seconds // 86400)} d"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, relative=relative)
    env.globals.update(htmx=HTMX)
    return env


def template_config() -> TemplateConfig:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))
