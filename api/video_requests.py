"""Reading a video request in any dialect (JSON or multipart) into a job row."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from shared.errors import BadRequest, InvalidParam
from shared.jobs import new_video_id
from shared.modelids import parse_model, resolve_video_params
from shared.models import Job, JobState
from shared.prompts import extract_style, normalize_style
from shared.settings import Settings
from shared.timeutil import utcnow

MAX_PROMPT_CHARS = 8000
# Known fields that later kinds of job will serve; refusing them beats silently making a different video.
_NOT_YET = (
    "input_reference",
    "input_image",
    "image",
    "images",
    "remix_target_id",
    "character_url",
    "character_from_task",
    "character_create",
)


def fingerprint(fields: dict[str, Any]) -> str:
    """Identifies a create request's content, so a reused Idempotency-Key with another body is caught."""
    canonical: dict[str, Any] = {}
    for key, value in sorted(fields.items()):
        if isinstance(value, UploadFile):
            canonical[key] = {"file": value.filename, "type": value.content_type}
        else:
            canonical[key] = value
    return hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()


def flag(value: Any, default: bool) -> bool:
    """Booleans as JSON, form fields or query strings send them."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidParam(f"expected a boolean, got {value!r}", param="async_mode")


class VideoCreate(msgspec.Struct):
    """Lenient on input: strings or numbers, aliases, and unknown fields ignored."""

    prompt: str | None = None
    model: str | None = None
    seconds: int | str | None = None
    duration: int | str | None = None
    size: str | None = None
    orientation: str | None = None
    style_id: str | None = None
    style: str | None = None
    metadata: dict[str, Any] | None = None


async def read_fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            fields.setdefault(key, value)
        return fields
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("The request body is empty; send JSON or multipart/form-data")
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("The request body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise BadRequest("The request body must be a JSON object")
    return decoded


def _present(fields: dict[str, Any], key: str) -> bool:
    value = fields.get(key)
    if isinstance(value, UploadFile):
        return True
    return value not in (None, "", [], {})


def build_video_job(
    fields: dict[str, Any], *, owner: str, idempotency_key: str | None, settings: Settings
) -> Job:
    for key in _NOT_YET:
        if _present(fields, key):
            raise InvalidParam(
                f"'{key}' is not supported by this gateway yet", param=key, code="unsupported_parameter"
            )
    scalars = {k: v for k, v in fields.items() if not isinstance(v, UploadFile)}
    if isinstance(scalars.get("metadata"), str):
        try:
            scalars["metadata"] = msgspec.json.decode(scalars["metadata"])
        except msgspec.DecodeError:
            raise InvalidParam("'metadata' must be a JSON object", param="metadata") from None
    try:
        request = msgspec.convert(scalars, VideoCreate, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid request: {exc}") from None

    prompt = (request.prompt or "").strip()
    if not prompt:
        raise InvalidParam("'prompt' is required", param="prompt", code="missing_required_parameter")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidParam(f"'prompt' is longer than {MAX_PROMPT_CHARS} characters", param="prompt")

    model = (request.model or "sora-2").strip()
    spec = parse_model(model)
    if spec.kind != "video":
        raise InvalidParam(f"'{model}' is an image model; use /v1/images/generations", param="model")
    seconds = request.seconds if request.seconds not in (None, "") else request.duration
    params = resolve_video_params(spec, seconds=seconds, size=request.size, orientation=request.orientation)

    style = normalize_style(request.style_id or request.style)
    upstream_prompt, prompt_style = extract_style(prompt)
    now = utcnow()
    return Job(
        id=new_video_id(),
        kind="video",
        owner=owner,
        idempotency_key=idempotency_key,
        request_hash=fingerprint(fields) if idempotency_key else None,
        state=JobState.QUEUED,
        model=model,
        prompt=prompt,
        seconds=params.seconds,
        size=params.size,
        params={
            "orientation": params.orientation,
            "n_frames": params.n_frames,
            "upstream_model": params.upstream_model,
            "upstream_size": params.upstream_size,
            "requires_pro": params.requires_pro,
            "style_id": style or prompt_style,
            "upstream_prompt": upstream_prompt,
        },
        user_metadata=request.metadata,
        created_at=now,
        updated_at=now,
        enqueued_at=now,
        deadline_at=now + timedelta(seconds=settings.job_deadline_s),
    )
