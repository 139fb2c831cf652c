"""media.expire: deletes the media of finished jobs whose time is up, once.

A completed job's files (video, thumbnail or image) and every job's staged inputs live until the job's
``expires_at`` (``completed_at + MEDIA_TTL_S`` when it completed). A failed job has no ``expires_at``; its
staged inputs go ``MEDIA_TTL_S`` after it ended. Each purged job is marked (``media_purged_at``), so the
work list only ever holds jobs whose media is still stored, and a job is purged once.

Deleting is idempotent, so a run that overlaps another, or a redelivered message, does no harm; a run
that dies half-way leaves the unmarked rest to the next run. A bucket lifecycle rule may delete the
objects first; then this only marks the rows (and still cleans a local MEDIA_DIR, which has no such rule).
"""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from shared.models import Job, JobState
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine.common import log

BATCH = 100
# One run stops taking new batches after this long; the next run goes on where it stopped.
RUN_BUDGET_S = 60.0


def media_prefixes(job_id: str, kind: str) -> list[str]:
    """Every folder that holds something of the job's: its own media and its staged inputs."""
    prefixes = [f"inputs/{job_id}"]
    if kind in ("video", "image"):
        prefixes.insert(0, f"{kind}s/{job_id}")
    return prefixes


async def _due(ctx: Context, limit: int) -> list[tuple[str, str]]:
    now = utcnow()
    due = sa.or_(
        Job.expires_at < now,
        sa.and_(
            Job.expires_at.is_(None),
            Job.completed_at < now - timedelta(seconds=ctx.settings.media_ttl_s),
        ),
    )
    query = (
        sa.select(Job.id, Job.kind)
        .where(
            Job.media_purged_at.is_(None),
            Job.completed_at.is_not(None),
            Job.state.in_(JobState.TERMINAL),
            due,
        )
        .order_by(Job.completed_at)
        .limit(limit)
    )
    async with ctx.sessions() as session:
        return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def _mark(ctx: Context, job_id: str) -> None:
    # Bookkeeping only: no new version of the job, no event.
    async with ctx.sessions() as session:
        await session.execute(
            sa.update(Job)
            .where(Job.id == job_id, Job.media_purged_at.is_(None))
            .values(media_purged_at=utcnow())
        )
        await session.commit()


async def expire(ctx: Context) -> dict[str, int]:
    started = time.monotonic()
    purged = objects = 0
    while time.monotonic() - started < RUN_BUDGET_S:
        due = await _due(ctx, BATCH)
        for job_id, kind in due:
            try:
                for prefix in media_prefixes(job_id, kind):
                    objects += await ctx.storage.delete_prefix(prefix)
            except OSError as exc:
                # The store is down or refuses: leave this job and the rest for the next run.
                log.warning("media of job %s not deleted (%s): %s", job_id, type(exc).__name__, exc)
                return {"purged": purged, "objects": objects, "failed": 1}
            await _mark(ctx, job_id)
            purged += 1
        if len(due) < BATCH:
            break
    if purged:
        log.info("media expired: %d job(s), %d object(s) deleted", purged, objects)
    return {"purged": purged, "objects": objects, "failed": 0}
