"""Logging for every process: text for a terminal, or one JSON object per line for collectors.

Lines carry the context they were written in: the job, the account (its pool id, never a token or an
email) and the Celery task. The worker's task wrappers and the engine bind these with contextvars, and a
log record factory copies them onto every record, whichever handler or formatter writes it. Anything
shaped like a credential is masked in every line as a last line of defence: code never logs secrets.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from shared.models import Job

P = ParamSpec("P")
R = TypeVar("R")

# The context of a line. Unset is None; every job task runs in a context of its own (worker.context).
job_id: ContextVar[str | None] = ContextVar("log_job_id", default=None)
account_id: ContextVar[int | None] = ContextVar("log_account_id", default=None)
task_name: ContextVar[str | None] = ContextVar("log_task_name", default=None)
task_id: ContextVar[str | None] = ContextVar("log_task_id", default=None)

_FIELDS = {"job_id": job_id, "account_id": account_id, "task": task_name, "task_id": task_id}

# JWTs and JWEs (access and session tokens), bearer credentials, the session cookie and token fields.
_SECRET_FIELDS = r"session-token|session_token|access_token|refresh_token|password"
_SECRET_PATTERNS = (
    re.compile(r"eyJ[\w-]{6,}(?:\.[\w-]*){1,4}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(rf"(?i)((?:{_SECRET_FIELDS})[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+"),
)


def redact(text: str) -> str:
    """Masks anything shaped like a credential (the same short form the admin API shows)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    prefix = match.group(1) if match.re.groups else ""
    secret = match.group(0)[len(prefix) :]
    return prefix + (f"{secret[:6]}…{secret[-4:]}" if len(secret) > 12 else "****")


# Binding ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Binds ``job_id``, ``account_id``, ``task`` and/or ``task_id`` for the lines written inside."""
    tokens = [(_FIELDS[name], _FIELDS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_job(job: Job) -> None:
    """The job (and its account, once it has one) for the rest of the current task."""
    job_id.set(job.id)
    if job.account_id is not None:
        account_id.set(job.account_id)


def bind_account(account: int | None) -> None:
    if account is not None:
        account_id.set(account)


def for_job(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Runs an engine step with its job (its first ``Job`` argument) and the job's account bound.

    For steps that handle one job of many (a poll of an account, a sweep): lines written inside carry
    that job, and the lines after it don't.
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        job = next((a for a in args if isinstance(a, Job)), None)
        if job is None:
            return await fn(*args, **kwargs)
        fields: dict[str, Any] = {"job_id": job.id}
        if job.account_id is not None:
            fields["account_id"] = job.account_id
        with bind(**fields):
            return await fn(*args, **kwargs)

    return wrapper


def context() -> dict[str, Any]:
    return {name: var.get() for name, var in _FIELDS.items() if var.get() is not None}


# Records and formats --------------------------------------------------------------------------------


def install_record_factory() -> None:
    """Every record gets the bound context as attributes (``record.job_id`` …), once per process."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_sora_context", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        for name, var in _FIELDS.items():
            setattr(record, name, var.get())
        return record

    factory._sora_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# LogRecord's own attributes: whatever else a record carries came from ``extra=`` and goes in the object.
# (uvicorn's color_message is its message again, with terminal colour codes.)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    *_FIELDS,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the bound context, extras, and exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "process": record.processName,
            "pid": record.process,
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in line:
                line[key] = (
                    value if isinstance(value, int | float | bool | type(None)) else redact(str(value))
                )
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class ContextTextFormatter(logging.Formatter):
    """A text formatter (its own format, or another formatter's) with the bound context appended."""

    def __init__(self, inner: logging.Formatter | None = None, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record) if self._inner is not None else super().format(record)
        bound = " ".join(
            f"{name}={getattr(record, name)}" for name in _FIELDS if getattr(record, name, None) is not None
        )
        return redact(f"{text} [{bound}]" if bound else text)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def formatter(log_format: str, inner: logging.Formatter | None = None) -> logging.Formatter:
    if log_format.lower() == "json":
        return JsonFormatter()
    return ContextTextFormatter(inner, None if inner is not None else TEXT_FORMAT)


def use_format(handlers: list[logging.Handler], log_format: str) -> None:
    """Puts our formatter on handlers someone else made (Celery's), keeping their text layout in text mode."""
    for handler in handlers:
        if isinstance(handler.formatter, JsonFormatter | ContextTextFormatter):
            continue
        handler.setFormatter(formatter(log_format, handler.formatter))


def configure(log_level: str, log_format: str) -> None:
    """The root logger of a process that sets up its own logging (the API): one handler on stderr.

    Idempotent: building the app again (tests do) changes nothing but the level and the format. Like
    ``logging.basicConfig`` it leaves a root logger that already has handlers of others alone.
    """
    install_record_factory()
    root = logging.getLogger()
    root.setLevel(log_level.upper())
    ours = [h for h in root.handlers if getattr(h, "_sora_handler", False)]
    if ours:
        ours[0].setFormatter(formatter(log_format))
    elif not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler._sora_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter(log_format))
        root.addHandler(handler)
    # Else someone configured logging before us (pytest's capture, an embedding app): theirs stays.
    quiet_libraries()


def quiet_libraries() -> None:
    """httpx logs every request line at INFO, signed media query strings included: keep that out of logs."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
