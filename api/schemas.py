"""msgspec structs of the HTTP surface, and their conversion from job rows."""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.models import Job, JobState
from shared.secrets import sign
from shared.timeutil import epoch

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]
TaskState = Literal["queued", "running", "succeeded", "failed"]


class ErrorInfo(msgspec.Struct):
    message: str
    code: str


class VideoData(msgspec.Struct):
    url: str
    revised_prompt: str


class Video(msgspec.Struct):
    id: str
    model: str
    status: VideoStatus
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    seconds: str
    size: str
    prompt: str
    remixed_from_video_id: str | None
    error: ErrorInfo | None
    object: Literal["video"] = "video"
    # Present once completed (sora2api compatibility).
    data: list[VideoData] | msgspec.UnsetType = msgspec.UNSET


class VideoDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["video.deleted"] = "video.deleted"


class VideoList(msgspec.Struct):
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"] = "list"


class TaskMedia(msgspec.Struct):
    url: str


class TaskData(msgspec.Struct, omit_defaults=True):
    videos: list[TaskMedia] | None = None
    images: list[TaskMedia] | None = None


class Task(msgspec.Struct):
    id: str
    task_id: str
    kind: str
    state: TaskState
    progress: int
    data: TaskData | None
    error: ErrorInfo | None
    created_at: int
    updated_at: int
    model: str


class Model(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "sora-gateway"
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: Literal["list"] = "list"


class AccountIn(msgspec.Struct, forbid_unknown_fields=False):
    token: str
    st: str | None = None
    rt: str | None = None
    client_id: str | None = None
    proxy_url: str | None = None
    video_concurrency: int = 3
    image_concurrency: int = 1
    remark: str | None = None


class AccountOut(msgspec.Struct):
    id: int
    email: str | None
    name: str | None
    username: str | None
    remark: str | None
    token: str | None
    st: str | None
    rt: str | None
    client_id: str | None
    proxy_url: str | None
    plan_type: str | None
    plan_title: str | None
    expires_at: int | None
    quota_remaining: int | None
    quota_resets_at: int | None
    video_concurrency: int
    image_concurrency: int
    enabled: bool
    disabled_reason: str | None
    cooldown_until: int | None
    cooldown_reason: str | None
    video_count: int
    image_count: int
    error_count: int
    consecutive_errors: int
    last_error: str | None
    check_errors: dict[str, str]
    last_used_at: int | None
    created_at: int
    object: Literal["account"] = "account"


class AccountList(msgspec.Struct):
    data: list[AccountOut]
    object: Literal["list"] = "list"


def _error(job: Job) -> ErrorInfo | None:
    if job.state != JobState.FAILED:
        return None
    return ErrorInfo(message=job.error_message or "Generation failed", code=job.error_code or "failed")


def content_url(job: Job, base_url: str, url_key: str) -> str:
    """A download link that works without our Authorization header (chat clients, browsers), until expiry."""
    expires = epoch(job.expires_at) or 0
    signature = sign(url_key, f"{job.id}:{expires}")
    return f"{base_url.rstrip('/')}/v1/{job.kind}s/{job.id}/content?exp={expires}&sig={signature}"


def video_of(job: Job, base_url: str, url_key: str) -> Video:
    video = Video(
        id=job.id,
        model=job.model,
        status=job.public_status,  # type: ignore[arg-type]
        progress=job.progress if job.state != JobState.QUEUED else 0,
        created_at=epoch(job.created_at) or 0,
        completed_at=epoch(job.completed_at),
        expires_at=epoch(job.expires_at),
        seconds=str(job.seconds),
        size=job.size,
        prompt=job.prompt,
        remixed_from_video_id=job.remixed_from_video_id,
        error=_error(job),
    )
    if job.state == JobState.COMPLETED:
        video.data = [VideoData(url=content_url(job, base_url, url_key), revised_prompt=job.prompt)]
    return video


_TASK_STATE: dict[str, TaskState] = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
}


def task_of(job: Job, base_url: str, url_key: str) -> Task:
    data = None
    if job.state == JobState.COMPLETED:
        media = [TaskMedia(url=content_url(job, base_url, url_key))]
        data = TaskData(images=media) if job.kind == "image" else TaskData(videos=media)
    return Task(
        id=job.id,
        task_id=job.id,
        kind=job.kind,
        state=_TASK_STATE[job.public_status],
        progress=job.progress if job.state != JobState.QUEUED else 0,
        data=data,
        error=_error(job),
        created_at=epoch(job.created_at) or 0,
        updated_at=epoch(job.updated_at) or 0,
        model=job.model,
    )
