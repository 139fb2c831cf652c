from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def from_epoch(value: float | int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)
