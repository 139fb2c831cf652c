"""Reading a character request (``POST /v1/characters``, a chat message, or a video request's character
options) into a character job row.

The source is a video (a file part, base64 or a data URL, staged in storage now;
or a public URL, checked now and fetched by the worker), or one of the caller's
finished videos (``from_task``: our job id or its ``gen_…`` draft id), which pins
the job to the account that owns that draft.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from litestar.datastructures import UploadFile

from api.bounds import refuse_nul
from api.video_requests import ensure_capable, fingerprint, flag
from shared.characters import normalize_username, parse_timestamps
from shared.errors import Conflict, InvalidParam, NotFound
from shared.inputs import InputVideo, check_url, decode_inline_video, video_from_bytes
from shared.jobs import JOB_ID, new_character_id, new_job_times
from shared.modelids import parse_model
from shared.models import Job, JobState
from shared.prompts import find_generation_id
from shared.resources import Resources

DEFAULT_MODEL = "sora-2"
MAX_TEXT_CHARS = 4000
# Where the source video may be, in order of preference.
VIDEO_FIELDS = ("video", "video_base64", "url")
_TEXT_FIELDS = ("display_name", "instruction_set", "safety_instruction_set")


def _present(value: Any) -> bool:
    return isinstance(value, UploadFile) or value not in (None, "", [], {})


def _text(options: dict[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidParam(f"'{name}' must be a string", param=name)
    text = str(value).strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParam(f"'{name}' is longer than {MAX_TEXT_CHARS} characters", param=name)
    return text or None


def character_options(options: dict[str, Any], *, timestamps_param: str = "timestamps") -> dict[str, Any]:
    """The parts of a character request that are not its source, checked."""
    return {
        "timestamps": list(parse_timestamps(options.get("timestamps"), param=timestamps_param)),
        "username": normalize_username(options.get("username")),
        **{name: _text(options, name) for name in _TEXT_FIELDS},
    }


def _video_url(value: Any) -> Any:
    """``{"url": …}`` and ``{"video_url": {"url": …}}`` as chat parts send them."""
    while isinstance(value, dict):
        value = value.get("url") or value.get("video_url")
    return value


async def video_source(value: Any, param: str, job_id: str, resources: Resources) -> dict[str, Any]:
    """Stages an uploaded or inline MP4, or checks a public URL for the worker to fetch."""
    limit = resources.settings.character_video_max_bytes
    value = _video_url(value)
    if isinstance(value, UploadFile):
        video = video_from_bytes(await value.read(), param=param, max_bytes=limit)
    elif isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        await check_url(value.strip(), param=param)
        return {"input_video": {"url": value.strip(), "param": param}}
    elif isinstance(value, str):
        video = decode_inline_video(value, param=param, max_bytes=limit)
    else:
        raise InvalidParam("expected an MP4 file, base64, a data URL or an https URL", param=param)
    return {"input_video": await _stage(resources, job_id, video)}


async def _stage(resources: Resources, job_id: str, video: InputVideo) -> dict[str, Any]:
    key = f"inputs/{job_id}/character.mp4"

    async def body():
        yield video.data

    await resources.storage.write(key, body())
    return {"key": key, "content_type": video.content_type}


async def task_source(value: Any, param: str, owner: str, resources: Resources) -> dict[str, Any]:
    """One of the caller's finished videos, by our id or its ``gen_…`` draft id: its draft and account."""
    if not isinstance(value, str):
        raise InvalidParam(f"'{param}' must be one of your video ids or its gen_… id", param=param)
    text = value.strip()
    _, generation_id = find_generation_id(text)
    if generation_id is not None and generation_id == text:
        source = await resources.jobs.by_generation_id(generation_id, owner)
        if source is None:
            raise InvalidParam(
                f"'{param}' names no draft of your videos; give one of your video ids or its gen_… id",
                param=param,
                code="generation_not_found",
            )
    else:
        source = await resources.jobs.get(text) if JOB_ID.fullmatch(text) else None
        if source is None or source.owner != owner or source.deleted_at is not None:
            raise NotFound(f"No video found with id '{text}'", param=param)
    if source.kind != "video":
        raise InvalidParam(f"'{param}' must name a video, not an {source.kind}", param=param)
    if source.state != JobState.COMPLETED or not source.generation_id or source.account_id is None:
        raise Conflict(
            f"'{param}': only a completed video can be made into a character",
            param=param,
            code="video_not_finished",
        )
    return {
        "generation_id": source.generation_id,
        "sticky_account_id": source.account_id,
        "from_job": source.id,
    }


def _model(value: Any) -> str:
    model = str(value).strip() if value not in (None, "") else DEFAULT_MODEL
    if parse_model(model).kind == "image":
        raise InvalidParam(f"'{model}' is an image model; characters are made from videos", param="model")
    return model


def character_job(
    *,
    job_id: str,
    owner: str,
    model: str,
    params: dict[str, Any],
    resources: Resources,
    waits: bool = False,
) -> Job:
    """A queued character job. One that ``waits`` for a video gets twice the deadline: it is reset when the
    video is done, and this one only bounds a video that never ends."""
    times = new_job_times(resources.settings.job_deadline_s)
    if waits:
        times["deadline_at"] += timedelta(seconds=resources.settings.job_deadline_s)
    return Job(
        id=job_id,
        kind="character",
        owner=owner,
        state=JobState.QUEUED,
        model=model,
        prompt="",
        seconds=0,
        size="",
        params={"operation": "character", **params},
        **times,
    )


async def plan_character_job(
    fields: dict[str, Any], *, owner: str, idempotency_key: str | None, resources: Resources
) -> Job:
    """A ``POST /v1/characters`` body (JSON or multipart) as a job row."""
    options = character_options(fields)
    model = _model(fields.get("model"))
    job_id = new_character_id()
    found = next(((name, fields[name]) for name in VIDEO_FIELDS if _present(fields.get(name))), None)
    if found is None and not _present(fields.get("from_task")):
        raise InvalidParam(
            "A character needs a source: 'video' (an MP4 file or base64), 'video_base64', 'url' "
            "or 'from_task' (one of your video ids or its gen_… id)",
            param="video",
            code="missing_required_parameter",
        )
    await ensure_capable(resources, "character", requires_pro=False)
    if found is not None:  # staged last, so a refused request leaves nothing behind
        source = await video_source(found[1], found[0], job_id, resources)
    else:
        source = await task_source(fields["from_task"], "from_task", owner, resources)
    job = character_job(
        job_id=job_id, owner=owner, model=model, params={**options, **source}, resources=resources
    )
    job.idempotency_key = idempotency_key
    job.request_hash = fingerprint(fields) if idempotency_key else None
    return job


async def plan_video_character(fields: dict[str, Any], video: Job, resources: Resources) -> Job | None:
    """The character a video request asks for (seed-004 extras), chained to the video job:

    * ``character_url`` (+ ``character_timestamps``): a character from that video (URL, base64 or data URL)
      first; the video waits for it and then mentions it;
    * ``character_from_task``: a character from one of the caller's finished videos first, likewise;
    * ``character_create``: a character from this video's own draft once the video is done.

    ``character_options`` (username, display_name, instruction sets, timestamps) apply to all three.
    """
    options = fields.get("character_options")
    if isinstance(options, str):  # a multipart field
        try:
            options = msgspec.json.decode(options)
        except (msgspec.DecodeError, RecursionError):
            raise InvalidParam(
                "'character_options' must be a JSON object", param="character_options"
            ) from None
    if options is not None and not isinstance(options, dict):
        raise InvalidParam("'character_options' must be a JSON object", param="character_options")
    options = dict(options or {})
    refuse_nul({"character_options": options})
    timestamps_param = "character_options"
    if _present(fields.get("character_timestamps")):
        options["timestamps"] = fields["character_timestamps"]
        timestamps_param = "character_timestamps"
    create_after = flag(fields.get("character_create"), default=False, param="character_create")
    asked = [name for name in ("character_url", "character_from_task") if _present(fields.get(name))]
    if create_after:
        asked.append("character_create")
    if not asked:
        return None
    if len(asked) > 1:
        raise InvalidParam(
            f"Use one of {', '.join(asked)}: a video makes at most one character", param=asked[1]
        )
    checked = character_options(options, timestamps_param=timestamps_param)
    job_id = new_character_id()
    owner, pinned = video.owner, video.params.get("sticky_account_id")
    # A video waits for its character on the account that makes it: one needing Pro needs it for both.
    requires_pro = not create_after and bool(video.params.get("requires_pro"))
    await ensure_capable(resources, "character", requires_pro=requires_pro)
    if create_after:
        source: dict[str, Any] = {"after_job": video.id}
    elif asked[0] == "character_url":  # staged last, so a refused request leaves nothing behind
        source = await video_source(fields["character_url"], "character_url", job_id, resources)
        if pinned is not None:  # the video must run on that account, so the character is made there too
            source["sticky_account_id"] = pinned
    else:
        source = await task_source(fields["character_from_task"], "character_from_task", owner, resources)
        if pinned is not None and pinned != source["sticky_account_id"]:
            raise InvalidParam(
                "The character's video and this video belong to different accounts; they cannot be combined",
                param="character_from_task",
            )
    if not create_after:
        source["then_job"] = video.id
        source["requires_pro"] = requires_pro
    return character_job(
        job_id=job_id,
        owner=owner,
        model=video.model,
        params={**checked, **source},
        resources=resources,
        waits=create_after,
    )
