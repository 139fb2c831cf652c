"""Downloads of finished media, by client key or by the signed link in answers (no key needed).

Streams from storage with Content-Length and Range. Only with STORAGE_REDIRECT (and an S3 store) does it
answer a 307 to a short-lived presigned URL instead: NewAPI's content proxy does not follow redirects.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream

from api.auth import client_owner
from api.routes.videos import _own_job
from shared.errors import Conflict, InvalidParam, NotFound, Unauthorized
from shared.models import Job, JobState
from shared.resources import Resources
from shared.secrets import verify
from shared.timeutil import utcnow

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# variant -> (job column, media type). The upstream makes no spritesheet: its one frame is the thumbnail.
_VARIANTS = {
    "video": {
        "video": ("media_key", "video/mp4"),
        "thumbnail": ("thumbnail_key", "image/webp"),
        "spritesheet": ("thumbnail_key", "image/webp"),
    },
    "image": {"image": ("media_key", "image/png")},
}
_DEFAULT_VARIANT = {"video": "video", "image": "image"}


class MediaController(Controller):
    path = "/v1"
    tags = ["media"]

    @get("/videos/{video_id:str}/content", operation_id="downloadVideoContent")
    async def video(
        self,
        request: Request,
        services: NamedDependency[Resources],
        video_id: FromPath[str],
        variant: FromQuery[str] = "video",
        exp: FromQuery[int | None] = None,
        sig: FromQuery[str | None] = None,
    ) -> Response:
        return await serve(request, services, video_id, variant, exp, sig)

    @get("/images/{image_id:str}/content", operation_id="downloadImageContent")
    async def image(
        self,
        request: Request,
        services: NamedDependency[Resources],
        image_id: FromPath[str],
        exp: FromQuery[int | None] = None,
        sig: FromQuery[str | None] = None,
    ) -> Response:
        return await serve(request, services, image_id, "image", exp, sig)


async def serve(
    request: Request, services: Resources, job_id: str, variant: str, exp: int | None, sig: str | None
) -> Response:
    job = await _authorised_job(request, services, job_id, exp, sig)
    variants = _VARIANTS[job.kind]
    if variant not in variants:
        raise InvalidParam(f"'variant' must be one of {', '.join(variants)}", param="variant")
    if job.state != JobState.COMPLETED:
        raise Conflict(
            f"The {job.kind} is not ready yet; poll it until it is completed", code=f"{job.kind}_not_ready"
        )
    now = utcnow()
    # Past expires_at the media is gone (or about to be: the media.expire task deletes it).
    if job.media_purged_at is not None or (job.expires_at is not None and job.expires_at < now):
        raise NotFound(f"The {job.kind} has expired", code="expired")
    column, media_type = variants[variant]
    key = getattr(job, column)
    size = await services.storage.size(key) if key else None
    if key is None or size is None:
        raise NotFound(f"This {job.kind} has no {variant}", code="variant_not_available")
    settings = services.settings
    if settings.storage_redirect:
        expires_s = settings.storage_redirect_ttl_s
        if job.expires_at is not None:
            expires_s = min(expires_s, int((job.expires_at - now).total_seconds()))
        url = await services.storage.presigned_url(key, max(1, expires_s), content_type=media_type)
        if url is not None:
            return Redirect(url, status_code=307, headers={"cache-control": "private, no-store"})
    return _ranged(services, key, size, media_type, request.headers.get("range"))


async def _authorised_job(
    request: Request, services: Resources, job_id: str, exp: int | None, sig: str | None
) -> Job:
    owner = await client_owner(request)
    if owner is not None:
        return await _own_job(services, job_id, owner)
    if sig is None or exp is None:
        raise Unauthorized("Incorrect API key provided")
    if exp < time.time() or not verify(services.url_key, f"{job_id}:{exp}", sig):
        raise NotFound(f"No media found with id '{job_id}'")
    job = await services.jobs.get(job_id)
    if job is None or job.deleted_at is not None:
        raise NotFound(f"No media found with id '{job_id}'")
    return job


def _ranged(services: Resources, key: str, size: int, media_type: str, header: str | None) -> Response:
    start, end, status = 0, size - 1, 200
    headers = {"accept-ranges": "bytes"}
    match = _RANGE.match(header.strip()) if header else None
    if header and match and size > 0:
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        elif last:
            start = max(size - int(last), 0)
        if start > end or start >= size:
            return Response(
                b"", status_code=416, headers={"content-range": f"bytes */{size}"}, media_type=media_type
            )
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in services.storage.read_range(key, start, end):
            yield chunk

    return Stream(body(), status_code=status, media_type=media_type, headers=headers)
