"""Admin: every job, whoever made it, and cancelling one.

A cancelled job ends ``failed`` with code ``cancelled``: polling stops (only running jobs are polled),
its account slot is given back at once, and a job chained to it (a character and its video) is woken to
fail with it. The upstream has no cancel call, so a task already created there runs to its end unseen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import sqlalchemy as sa
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from api.auth import admin_guard
from shared.errors import Conflict, InvalidParam, NotFound
from shared.models import PUBLIC_STATUS, Job, JobState
from shared.resources import Resources
from shared.timeutil import epoch

CANCELLED = "cancelled"
KINDS = ("video", "image", "character")


class AdminJob(msgspec.Struct):
    id: str
    kind: str
    # The public status (queued, in_progress, completed, failed) and the internal state behind it.
    status: str
    state: str
    progress: int
    owner: str
    model: str
    prompt: str
    account_id: int | None
    upstream_task_id: str | None
    upstream_status: str | None
    generation_id: str | None
    error_code: str | None
    error_message: str | None
    attempts: list[dict[str, Any]]
    created_at: int
    updated_at: int
    completed_at: int | None
    deadline_at: int
    object: Literal["job"] = "job"


class AdminJobList(msgspec.Struct):
    data: list[AdminJob]
    has_more: bool
    # Pass as `before` for the next (older) page.
    next_before: str | None
    object: Literal["list"] = "list"


def admin_job(job: Job) -> AdminJob:
    return AdminJob(
        id=job.id,
        kind=job.kind,
        status=PUBLIC_STATUS[job.state],
        state=job.state,
        progress=job.progress,
        owner=job.owner,
        model=job.model,
        prompt=job.prompt,
        account_id=job.account_id,
        upstream_task_id=job.upstream_task_id,
        upstream_status=job.upstream_status,
        generation_id=job.generation_id,
        error_code=job.error_code,
        error_message=job.error_message,
        attempts=job.attempts,
        created_at=epoch(job.created_at) or 0,
        updated_at=epoch(job.updated_at) or 0,
        completed_at=epoch(job.completed_at),
        deadline_at=epoch(job.deadline_at) or 0,
    )


def _state_filter(status: str) -> list[str]:
    """A public status or an internal state."""
    if status in JobState.OPEN or status in JobState.TERMINAL:
        return [status]
    states = [state for state, public in PUBLIC_STATUS.items() if public == status]
    if not states:
        allowed = sorted(set(PUBLIC_STATUS) | set(PUBLIC_STATUS.values()))
        raise InvalidParam(f"'status' must be one of {', '.join(allowed)}", param="status")
    return states


class JobController(Controller):
    path = "/api/jobs"
    guards = [admin_guard]
    tags = ["admin"]

    @get("", operation_id="listJobs")
    async def list_jobs(
        self,
        services: NamedDependency[Resources],
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        account_id: FromQuery[int | None] = None,
        owner: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> AdminJobList:
        """Newest first, filtered by status (public or internal), kind, account and owner."""
        return await find_jobs(
            services, status=status, kind=kind, account_id=account_id, owner=owner, before=before, limit=limit
        )

    @get("/{job_id:str}", operation_id="getJob")
    async def get_job(self, job_id: FromPath[str], services: NamedDependency[Resources]) -> AdminJob:
        return admin_job(await job_detail(services, job_id))

    @post("/{job_id:str}/cancel", operation_id="cancelJob", status_code=200)
    async def cancel(self, job_id: FromPath[str], services: NamedDependency[Resources]) -> AdminJob:
        return admin_job(await cancel_job(services, job_id))


# What these routes do, also called by the console (api/routes/console.py).


def job_filter(
    *,
    status: str | None = None,
    kind: str | None = None,
    account_id: int | None = None,
    owner: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The conditions of a job list's filters (none: every job)."""
    where: list[sa.ColumnElement[bool]] = []
    if status:
        where.append(Job.state.in_(_state_filter(status)))
    if kind:
        if kind not in KINDS:
            raise InvalidParam(f"'kind' must be one of {', '.join(KINDS)}", param="kind")
        where.append(Job.kind == kind)
    if account_id is not None:
        where.append(Job.account_id == account_id)
    if owner:
        where.append(Job.owner == owner)
    return where


async def job_listed(services: Resources, job_id: str, where: list[sa.ColumnElement[bool]]) -> bool:
    """Whether a job is one a list with these filters shows."""
    async with services.sessions() as session:
        found = await session.execute(sa.select(Job.id).where(Job.id == job_id, *where))
        return found.scalar_one_or_none() is not None


async def find_jobs(
    services: Resources,
    *,
    status: str | None = None,
    kind: str | None = None,
    account_id: int | None = None,
    owner: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> AdminJobList:
    query = sa.select(Job).where(*job_filter(status=status, kind=kind, account_id=account_id, owner=owner))
    if before:
        async with services.sessions() as session:
            anchor: datetime | None = (
                await session.execute(sa.select(Job.created_at).where(Job.id == before))
            ).scalar_one_or_none()
        if anchor is None:
            raise InvalidParam(f"No job with id '{before}'", param="before")
        query = query.where(sa.tuple_(Job.created_at, Job.id) < sa.tuple_(anchor, before))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    async with services.sessions() as session:
        rows = list((await session.execute(query)).scalars().all())
    page = rows[:limit]
    has_more = len(rows) > limit
    return AdminJobList(
        data=[admin_job(job) for job in page],
        has_more=has_more,
        next_before=page[-1].id if has_more and page else None,
    )


async def job_detail(services: Resources, job_id: str) -> Job:
    job = await services.jobs.get(job_id)
    if job is None:
        raise NotFound(f"No job with id '{job_id}'", param="job_id")
    return job


async def cancel_job(services: Resources, job_id: str) -> Job:
    job = await job_detail(services, job_id)
    cancelled = await services.jobs.fail(job.id, CANCELLED, "The job was cancelled by an operator")
    if cancelled is None:
        raise Conflict(f"The job has already ended ({job.public_status})", code="job_finished")
    if cancelled.account_id is not None:
        await services.pool.leases.release(cancelled.account_id, cancelled.kind, cancelled.id)
    await services.publisher.publish(cancelled, "Cancelled")
    waiting = cancelled.params.get("then_job")
    if waiting:
        services.enqueue.submit(waiting)  # the chained job sees this one failed and fails with it
    return cancelled
