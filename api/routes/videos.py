"""OpenAI Videos routes (contract section 2) and the native task view (section 3)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from litestar import Controller, Request, Response, delete, get, post
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from api import bounds
from api.auth import client_auth
from api.character_requests import plan_video_character
from api.schemas import Task, Video, VideoDeleted, VideoList, task_of, video_of
from api.video_requests import discard_inputs, flag, plan_video_job, read_fields, start_jobs
from api.watch import KEEPALIVE_FRAME, follow, sse_frame, wait_until_done
from shared.admission import session_copy
from shared.errors import Conflict, GatewayError, InvalidParam, NotFound
from shared.jobs import JOB_ID
from shared.models import Job, JobState
from shared.resources import Resources

POST_ID = re.compile(r"s_[0-9a-f]{32}")


# Jobs the video routes show; character jobs are seen through the task view and /v1/characters.
MEDIA_KINDS = ("video", "image")

_SSE_HEADERS = {"cache-control": "no-cache", "connection": "keep-alive", "x-accel-buffering": "no"}


async def _own_job(
    services: Resources, job_id: str, owner: str, kinds: tuple[str, ...] | None = MEDIA_KINDS
) -> Job:
    job = await services.jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if (
        job is None
        or job.owner != owner
        or job.deleted_at is not None
        or (kinds is not None and job.kind not in kinds)
    ):
        raise NotFound(f"No video found with id '{job_id}'", param="video_id")
    return job


def _chain(video: Job, character: Job, deadline_s: float) -> None:
    """Ties a video and its character: the one made first wakes the other (worker.engine.characters)."""
    video.params["character_job"] = character.id
    if character.params.get("after_job") == video.id:
        video.params["then_job"] = character.id
    else:
        video.params["after_job"] = character.id
        # It waits for the character first; its deadline is reset once the character is done.
        video.deadline_at += timedelta(seconds=deadline_s)


async def submit_video(
    request: Request,
    services: Resources,
    fields: dict,
    *,
    remix_of: Job | None = None,
    remix_target: str | None = None,
) -> Job:
    idempotency_key = bounds.idempotency_key(request)
    # Checked before anything is stored: a committed create is never answered with an error.
    hold = not flag(fields.get("async_mode"), default=True)
    job = await plan_video_job(
        fields,
        owner=request.state.owner,
        idempotency_key=idempotency_key,
        resources=services,
        remix_of=remix_of,
        remix_target=remix_target,
    )
    try:
        character = await plan_video_character(fields, job, services)
    except GatewayError:
        await discard_inputs(services, job.id)
        raise
    if character is not None:
        job = session_copy(job)
        _chain(job, character, services.settings.job_deadline_s)
    stored, created = await services.admission.insert(job)
    if not created:
        # A repeated create answers the stored job: what this one staged is not needed.
        await discard_inputs(services, job.id, *([character.id] if character is not None else []))
    if not created and stored.request_hash != job.request_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    if created:
        if character is not None:
            await services.jobs.insert_group([character])
        # A job that waits for the other one only checks and returns; the first of the two starts.
        await start_jobs(services, stored.id, *([character.id] if character is not None else []))
    if hold:
        channels = request.app.plugins.get(ChannelsPlugin)
        await wait_until_done(channels, services, stored.id, services.settings.sync_wait_s)
        stored = await services.jobs.get(stored.id) or stored
    return stored


class VideoController(Controller):
    path = "/v1/videos"
    before_request = client_auth
    tags = ["videos"]

    @post("", operation_id="createVideo", status_code=200)
    async def create(self, request: Request, services: NamedDependency[Resources]) -> Video:
        # One dependency: Litestar resolves two or more in a task group, a tenth of a create's CPU.
        fields = await read_fields(request)
        job = await submit_video(request, services, fields)
        return video_of(job, services.settings.public_base_url, services.url_key)

    @post("/{video_id:str}/remix", operation_id="remixVideo", status_code=200)
    async def remix(
        self,
        request: Request,
        services: NamedDependency[Resources],
        video_id: FromPath[str],
    ) -> Video:
        fields = await read_fields(request)
        if POST_ID.fullmatch(video_id):
            job = await submit_video(request, services, fields, remix_target=video_id)
        else:
            source = await _own_job(services, video_id, request.state.owner)
            if source.state != JobState.COMPLETED or not source.generation_id:
                raise Conflict(
                    "Only a completed video can be remixed", param="video_id", code="video_not_finished"
                )
            job = await submit_video(request, services, fields, remix_of=source)
        return video_of(job, services.settings.public_base_url, services.url_key)

    @post("/generations", operation_id="createVideoTask", status_code=200, tags=["tasks"])
    async def create_task(self, request: Request, services: NamedDependency[Resources]) -> Task:
        """The native task dialect: aspect_ratio, duration, image_urls; answers the task view."""
        fields = await read_fields(request)
        characters = fields.get("characters")
        if characters:
            # One character per video: made first from {url, timestamps}, then mentioned by the video.
            if (
                not isinstance(characters, list)
                or len(characters) != 1
                or not isinstance(characters[0], dict)
            ):
                raise InvalidParam(
                    "'characters' takes one {url, timestamps} entry", param="characters", code="invalid_value"
                )
            fields = {
                **fields,
                "character_url": characters[0].get("url"),
                "character_timestamps": characters[0].get("timestamps"),
            }
        job = await submit_video(request, services, fields)
        return task_of(job, services.settings.public_base_url, services.url_key)

    @delete("/{video_id:str}", operation_id="deleteVideo", status_code=200)
    async def remove(
        self, request: Request, services: NamedDependency[Resources], video_id: FromPath[str]
    ) -> VideoDeleted:
        job = await _own_job(services, video_id, request.state.owner)
        if not job.is_terminal:
            raise Conflict(
                "Only a completed or failed video can be deleted", param="video_id", code="video_not_finished"
            )
        await services.jobs.mark_deleted(job.id)
        await services.storage.delete_prefix(f"{job.kind}s/{job.id}")
        await services.storage.delete_prefix(f"inputs/{job.id}")
        return VideoDeleted(id=job.id)

    @get("/{video_id:str}/events", operation_id="videoEvents")
    async def events(
        self,
        request: Request,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
        video_id: FromPath[str],
    ) -> Stream:
        job = await _own_job(services, video_id, request.state.owner, kinds=None)
        resume = request.headers.get("last-event-id")
        try:
            after = int(resume) if resume else None
        except ValueError:
            raise InvalidParam(
                "Last-Event-ID must be an event id from this stream", param="Last-Event-ID"
            ) from None

        async def frames() -> AsyncIterator[bytes]:
            keepalive_s = services.settings.sse_keepalive_s
            events = follow(
                channels, services, job.id, after_seq=after, keepalive_s=keepalive_s, stream="video_events"
            )
            async with contextlib.aclosing(events):  # a client gone: the subscription ends now, not at GC
                async for event in events:
                    yield KEEPALIVE_FRAME if event is None else sse_frame(event)

        # The messages are built here (one frame per published event, shared by all its streams), so the
        # response is a plain stream with the headers Litestar's ServerSentEvent would set.
        return Stream(frames(), media_type="text/event-stream", headers=_SSE_HEADERS)

    @get("", operation_id="listVideos")
    async def list_videos(
        self,
        request: Request,
        services: NamedDependency[Resources],
        after: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        order: Annotated[str, QueryParameter(pattern="^(asc|desc)$")] = "desc",
    ) -> VideoList:
        owner = request.state.owner
        marker = await _own_job(services, after, owner) if after else None
        jobs = await services.jobs.list_for_owner(
            owner, limit=limit + 1, after=marker, ascending=order == "asc", kinds=MEDIA_KINDS
        )
        page = [video_of(j, services.settings.public_base_url, services.url_key) for j in jobs[:limit]]
        return VideoList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(jobs) > limit,
        )

    @get("/{video_id:str}", operation_id="getVideo")
    async def retrieve(
        self, request: Request, services: NamedDependency[Resources], video_id: FromPath[str]
    ) -> Response[Video]:
        job = await _own_job(services, video_id, request.state.owner)
        headers = {}
        if not job.is_terminal:
            headers["openai-poll-after-ms"] = str(int(services.settings.poll_interval_s * 1000))
        return Response(video_of(job, services.settings.public_base_url, services.url_key), headers=headers)

    @get("/tasks/{task_id:str}", operation_id="getTask", tags=["tasks"])
    async def task(
        self, request: Request, services: NamedDependency[Resources], task_id: FromPath[str]
    ) -> Task:
        job = await _own_job(services, task_id, request.state.owner, kinds=None)
        return task_of(job, services.settings.public_base_url, services.url_key)
