"""msgspec structs of the HTTP surface, and their conversion from job rows."""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.models import Character, Job, JobState
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


class CharacterRef(msgspec.Struct):
    """The character job chained to a video (made before it, or from it afterwards): follow it at
    ``GET /v1/videos/tasks/{id}``."""

    id: str


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
    # Present when the request asked for a character (character_url, character_from_task, character_create).
    character: CharacterRef | msgspec.UnsetType = msgspec.UNSET


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


class TaskCharacter(msgspec.Struct):
    """What a character job made; each field null until known."""

    cameo_id: str | None
    character_id: str | None
    username: str | None
    display_name: str | None


class TaskData(msgspec.Struct, omit_defaults=True):
    videos: list[TaskMedia] | None = None
    images: list[TaskMedia] | None = None
    character: TaskCharacter | None = None


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
    # A video's chained character job, as in the Video object.
    character: CharacterRef | msgspec.UnsetType = msgspec.UNSET


class CharacterData(msgspec.Struct):
    cameo_id: str | None
    character_id: str | None
    username: str | None
    display_name: str | None
    message: str


class CharacterObject(msgspec.Struct):
    """``POST /v1/characters`` and the items of ``GET /v1/characters``."""

    id: str
    created: int
    model: str
    status: VideoStatus
    data: CharacterData
    error: ErrorInfo | None
    object: Literal["character"] = "character"


class CharacterList(msgspec.Struct):
    data: list[CharacterObject]
    object: Literal["list"] = "list"


class Model(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "sora-gateway"
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[Model]
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
    if job.params.get("character_job"):
        video.character = CharacterRef(id=job.params["character_job"])
    return video


_TASK_STATE: dict[str, TaskState] = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
}


def task_of(job: Job, base_url: str, url_key: str) -> Task:
    data = None
    if job.kind == "character":
        data = TaskData(character=character_fields(job))
    elif job.state == JobState.COMPLETED:
        media = [TaskMedia(url=content_url(job, base_url, url_key))]
        data = TaskData(images=media) if job.kind == "image" else TaskData(videos=media)
    task = Task(
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
    if job.params.get("character_job"):
        task.character = CharacterRef(id=job.params["character_job"])
    return task


def character_fields(job: Job) -> TaskCharacter:
    params = job.params
    return TaskCharacter(
        cameo_id=job.upstream_task_id,
        character_id=params.get("character_id"),
        username=params.get("username_chosen"),
        display_name=params.get("display_name_final") or params.get("display_name"),
    )


_CHARACTER_MESSAGES = {
    "queued": "Character creation is queued",
    "in_progress": "Character creation is in progress",
    "completed": "Character creation completed",
}


def character_of(job: Job) -> CharacterObject:
    made = character_fields(job)
    status = job.public_status
    if job.state == JobState.FAILED:
        message = f"Character creation failed: {job.error_message or 'unknown reason'}"
    else:
        message = _CHARACTER_MESSAGES[status]
    return CharacterObject(
        id=job.id,
        created=epoch(job.created_at) or 0,
        model=job.model,
        status=status,  # type: ignore[arg-type]
        data=CharacterData(
            cameo_id=made.cameo_id,
            character_id=made.character_id,
            username=made.username,
            display_name=made.display_name,
            message=message,
        ),
        error=_error(job),
    )


def character_of_row(character: Character, model: str) -> CharacterObject:
    return CharacterObject(
        id=character.id,
        created=epoch(character.created_at) or 0,
        model=model,
        status="completed",
        data=CharacterData(
            cameo_id=character.cameo_id,
            character_id=character.character_id,
            username=character.username,
            display_name=character.display_name,
            message=_CHARACTER_MESSAGES["completed"],
        ),
        error=None,
    )
