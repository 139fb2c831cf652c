"""The overview's numbers: jobs per state, finished jobs over time, upstream error classes, pool capacity.

Read from Postgres (the truth) and the lease sets, on each page view; nothing here is kept or cached.
"""

from __future__ import annotations

import time
from datetime import timedelta

import msgspec
import sqlalchemy as sa

from api.routes.tokens import KINDS, AccountOut
from shared.models import Job, JobState
from shared.resources import Resources
from shared.timeutil import utcnow

STEP_S = 300
DAY_S = 86400
ALL_STATES = (*JobState.OPEN, *JobState.TERMINAL)


class Bucket(msgspec.Struct):
    start: float
    completed: int = 0
    failed: int = 0


class Bar(msgspec.Struct):
    x: float
    width: float
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float
    label: str


class Chart(msgspec.Struct):
    title: str
    bars: list[Bar]
    width: int
    height: int
    peak: int
    completed: int
    failed: int
    first_label: str
    last_label: str


class Capacity(msgspec.Struct):
    kind: str
    in_use: int
    limit: int


class Overview(msgspec.Struct):
    open_states: dict[str, int]
    finished: dict[str, dict[str, int]]
    charts: list[Chart]
    error_classes: list[tuple[str, int]]
    accounts_by_status: dict[str, int]
    capacity: list[Capacity]


async def finished_buckets(services: Resources, now: float) -> list[Bucket]:
    """Completions and failures of the last day in five-minute buckets, oldest first."""
    first = (int(now) // STEP_S) * STEP_S - DAY_S + STEP_S
    cutoff = utcnow() - timedelta(seconds=now - first)
    bucket = sa.func.floor(sa.extract("epoch", Job.completed_at) / STEP_S)
    # A job finishes within its deadline of being made (a chained one within two): bounding created_at too
    # lets Postgres use the (state, created_at) index instead of reading every finished job ever.
    made_after = cutoff - timedelta(seconds=2 * services.settings.job_deadline_s)
    query = (
        sa.select(Job.state, bucket, sa.func.count())
        .where(Job.state.in_(JobState.TERMINAL), Job.created_at >= made_after, Job.completed_at >= cutoff)
        .group_by(Job.state, bucket)
    )
    buckets = [Bucket(start=first + i * STEP_S) for i in range(DAY_S // STEP_S)]
    async with services.sessions() as session:
        for state, number, count in (await session.execute(query)).all():
            index = int(number) - first // STEP_S
            if 0 <= index < len(buckets):
                setattr(buckets[index], state, getattr(buckets[index], state) + int(count))
    return buckets


def merge(buckets: list[Bucket], size: int) -> list[Bucket]:
    merged = []
    for start in range(0, len(buckets), size):
        group = buckets[start : start + size]
        merged.append(
            Bucket(
                start=group[0].start,
                completed=sum(b.completed for b in group),
                failed=sum(b.failed for b in group),
            )
        )
    return merged


def chart(
    title: str, buckets: list[Bucket], step_s: int, since: str, *, width: int = 480, height: int = 120
) -> Chart:
    """Stacked bars (failures on top of completions), scaled to the busiest bucket."""
    peak = max((b.completed + b.failed for b in buckets), default=0)
    scale = (height - 4) / peak if peak else 0.0
    slot = width / max(1, len(buckets))
    bars = []
    for index, b in enumerate(buckets):
        completed_h = b.completed * scale
        failed_h = b.failed * scale
        start = time.strftime("%H:%M", time.gmtime(b.start))
        end = time.strftime("%H:%M", time.gmtime(b.start + step_s))
        bars.append(
            Bar(
                x=round(index * slot + 1, 2),
                width=round(max(1.0, slot - 2), 2),
                completed_y=round(height - completed_h, 2),
                completed_height=round(completed_h, 2),
                failed_y=round(height - completed_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=f"{start} to {end} UTC: {b.completed} completed, {b.failed} failed",
            )
        )
    return Chart(
        title=title,
        bars=bars,
        width=width,
        height=height,
        peak=peak,
        completed=sum(b.completed for b in buckets),
        failed=sum(b.failed for b in buckets),
        first_label=since,
        last_label="now",
    )


async def error_classes(services: Resources, limit: int = 12) -> list[tuple[str, int]]:
    """Upstream error classes of the attempts of the jobs made in the last day, most frequent first.

    A job makes its attempts within its deadline, so these are the last day's attempts, give or take that.
    (Naming every state lets Postgres use the (state, created_at) index.)"""
    since = utcnow() - timedelta(seconds=DAY_S)
    attempt = sa.func.jsonb_array_elements(Job.attempts).table_valued("value").alias("attempt")
    error_class = attempt.c.value.op("->>")("error_class")
    query = (
        sa.select(error_class, sa.func.count())
        .select_from(Job)
        .join(attempt, sa.true())
        .where(Job.state.in_(ALL_STATES), Job.created_at >= since)
        .group_by(error_class)
        .order_by(sa.func.count().desc(), error_class)
        .limit(limit)
    )
    async with services.sessions() as session:
        return [(str(name or "unknown"), int(count)) for name, count in (await session.execute(query)).all()]


async def open_state_counts(services: Resources) -> dict[str, int]:
    """Open jobs per internal state, now."""
    async with services.sessions() as session:
        rows = await session.execute(
            sa.select(Job.state, sa.func.count()).where(Job.state.in_(JobState.OPEN)).group_by(Job.state)
        )
        found = {state: int(count) for state, count in rows.all()}
    return {state: found.get(state, 0) for state in JobState.OPEN}


def capacity(accounts: list[AccountOut]) -> list[Capacity]:
    """Slots in use against the limits of the accounts that can take work now."""
    usable = [a for a in accounts if a.status == "active"]
    return [
        Capacity(
            kind=kind,
            in_use=sum(a.slots[kind].in_use for a in accounts),
            limit=sum(a.slots[kind].limit for a in usable),
        )
        for kind in KINDS
    ]


async def build(services: Resources, accounts: list[AccountOut]) -> Overview:
    now = time.time()
    open_states = await open_state_counts(services)
    buckets = await finished_buckets(services, now)
    last_hour = buckets[-(3600 // STEP_S) :]
    finished = {
        "last hour": {
            "completed": sum(b.completed for b in last_hour),
            "failed": sum(b.failed for b in last_hour),
        },
        "last day": {
            "completed": sum(b.completed for b in buckets),
            "failed": sum(b.failed for b in buckets),
        },
    }
    by_status: dict[str, int] = {}
    for account in accounts:
        by_status[account.status] = by_status.get(account.status, 0) + 1
    return Overview(
        open_states=open_states,
        finished=finished,
        charts=[
            chart("Last hour (5-minute bars)", last_hour, STEP_S, "1 h ago"),
            chart("Last day (1-hour bars)", merge(buckets, 3600 // STEP_S), 3600, "24 h ago"),
        ],
        error_classes=await error_classes(services),
        accounts_by_status=by_status,
        capacity=capacity(accounts),
    )
