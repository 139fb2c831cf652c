"""OpenAI Images (contract section 4): synchronous answers, but every picture is a job in the queue."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, post
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from sqlalchemy.exc import IntegrityError

from api import bounds
from api.auth import client_auth
from api.schemas import content_url
from api.video_requests import (
    check_prompt,
    convert_fields,
    discard_inputs,
    ensure_capable,
    fingerprint,
    read_fields,
    reference_image,
    start_jobs,
)
from api.watch import wait_until_done
from shared.errors import Conflict, GatewayError, InvalidParam
from shared.jobs import new_image_id, new_job_times
from shared.modelids import parse_model, resolve_image_params
from shared.models import Job, JobState
from shared.prompts import extract_style
from shared.resources import Resources


class ImageRequest(msgspec.Struct):
    prompt: str | None = None
    model: str | None = None
    n: int | str | None = None
    size: str | None = None
    response_format: str | None = None


class ImageDatum(msgspec.Struct, omit_defaults=True):
    revised_prompt: str
    url: str | None = None
    b64_json: str | None = None


class ImagesResponse(msgspec.Struct):
    created: int
    data: list[ImageDatum]


class GenerationFailed(GatewayError):
    status_code = 502
    error_type = "server_error"
    default_code = "generation_failed"


class StillRunning(GatewayError):
    status_code = 504
    error_type = "server_error"
    default_code = "timeout"


class ImageController(Controller):
    path = "/v1/images"
    before_request = client_auth
    tags = ["images"]

    @post("/generations", operation_id="createImage", status_code=200)
    async def generations(
        self,
        request: Request,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
    ) -> ImagesResponse:
        return await _images(request, services, channels, needs_image=False)

    @post("/edits", operation_id="editImage", status_code=200)
    async def edits(
        self,
        request: Request,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
    ) -> ImagesResponse:
        return await _images(request, services, channels, needs_image=True)


async def _images(
    request: Request, services: Resources, channels: ChannelsPlugin, *, needs_image: bool
) -> ImagesResponse:
    fields = await read_fields(request)
    response_format = _response_format(fields.get("response_format"))
    jobs = await submit_images(request, services, fields, needs_image=needs_image)
    timeout = services.settings.sync_wait_s
    await asyncio.gather(*(wait_until_done(channels, services, job.id, timeout) for job in jobs))
    finished = [await services.jobs.get(job.id) or job for job in jobs]
    return await _answer(finished, services, response_format)


async def submit_images(
    request: Request, services: Resources, fields: dict[str, Any], *, needs_image: bool = False
) -> list[Job]:
    """Stores one job per picture (one group) and enqueues them; a repeated Idempotency-Key returns those."""
    known = {name: fields[name] for name in ImageRequest.__struct_fields__ if name in fields}
    parsed = convert_fields(known, ImageRequest)
    idempotency_key = bounds.idempotency_key(request)
    jobs = await _plan(fields, parsed, request, services, needs_image=needs_image)

    first = jobs[0]
    first.idempotency_key = idempotency_key
    first.request_hash = fingerprint(fields) if idempotency_key else None
    try:
        await services.jobs.insert_group(jobs)
    except IntegrityError:
        if idempotency_key is None:
            raise
        if first.group_id:
            await discard_inputs(services, first.group_id)  # a repeated create answers the stored jobs
        existing = await services.jobs.by_idempotency_key(request.state.owner, idempotency_key)
        if existing is None or existing.group_id is None:
            raise
        if existing.request_hash != first.request_hash:
            raise Conflict(
                "This Idempotency-Key was already used with a different request",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            ) from None
        return await services.jobs.in_group(existing.group_id)
    await start_jobs(services, *(job.id for job in jobs))
    return jobs


def _response_format(value: Any) -> Literal["url", "b64_json"]:
    if value in (None, "", "url"):
        return "url"
    if value == "b64_json":
        return "b64_json"
    raise InvalidParam("'response_format' must be url or b64_json", param="response_format")


async def _plan(
    fields: dict[str, Any], parsed: ImageRequest, request: Request, services: Resources, *, needs_image: bool
) -> list[Job]:
    prompt = check_prompt(parsed.prompt, services)
    try:
        n = int(parsed.n) if parsed.n not in (None, "") else 1
    except (TypeError, ValueError):
        raise InvalidParam("'n' must be a whole number from 1 to 4", param="n") from None
    if not 1 <= n <= 4:
        raise InvalidParam("'n' must be from 1 to 4", param="n")
    model = (parsed.model or "sora-image").strip()
    spec = parse_model(model)
    if spec.kind != "image":
        raise InvalidParam(f"'{model}' is not an image model; use /v1/videos", param="model")
    image = resolve_image_params(spec, size=parsed.size)

    await ensure_capable(services, "image", requires_pro=False)
    group_id = "grp_" + secrets.token_hex(12)
    reference = await reference_image(fields, group_id, services)
    if needs_image and reference is None:
        raise InvalidParam(
            "'image' is required for an edit", param="image", code="missing_required_parameter"
        )
    text, _ = extract_style(prompt)
    params: dict[str, Any] = {"width": image.width, "height": image.height, "upstream_prompt": text}
    if reference is not None:
        params["input_image"] = reference
    return [
        Job(
            id=new_image_id(),
            kind="image",
            owner=request.state.owner,
            group_id=group_id,
            state=JobState.QUEUED,
            model=model,
            prompt=prompt,
            seconds=0,
            size=image.size,
            params=params,
            **new_job_times(services.settings.job_deadline_s),
        )
        for _ in range(n)
    ]


async def _answer(jobs: list[Job], services: Resources, response_format: str) -> ImagesResponse:
    failed = [job for job in jobs if job.state == JobState.FAILED]
    if failed:
        job = next((j for j in failed if j.error_code == "content_filter"), failed[0])
        message = job.error_message or "Generation failed"
        if job.error_code == "content_filter":
            raise InvalidParam(message, param="prompt", code="content_filter")
        raise GenerationFailed(message, code=job.error_code or "generation_failed")
    running = [job for job in jobs if job.state != JobState.COMPLETED]
    if running:
        ids = ", ".join(job.id for job in running)
        raise StillRunning(f"The images are still being made; poll GET /v1/videos/tasks/{{id}} for {ids}")
    data = []
    for job in jobs:
        if response_format == "b64_json":
            raw = await services.storage.read(job.media_key or "")
            data.append(ImageDatum(revised_prompt=job.prompt, b64_json=base64.b64encode(raw).decode()))
        else:
            url = content_url(job, services.settings.public_base_url, services.url_key)
            data.append(ImageDatum(revised_prompt=job.prompt, url=url))
    return ImagesResponse(created=int(time.time()), data=data)
