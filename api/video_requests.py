"""Reading a video request in any dialect (JSON or multipart) into a job row.

Everything a client may send is resolved here, before anything is stored: the
model and its parameters, the style, a remix target, a storyboard, an extension
of one of our drafts, and a reference image (staged in storage, or a remote URL
checked now and fetched by the worker).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from api.bounds import METADATA_MAX_BYTES, refuse_nul, refuse_nul_in_json
from shared.errors import BadRequest, InvalidParam
from shared.inputs import InputImage, check_url, decode_inline_image, image_from_bytes
from shared.jobs import new_job_times, new_video_id
from shared.modelids import parse_model, resolve_video_params
from shared.models import Job, JobState
from shared.prompts import (
    extract_style,
    find_generation_id,
    find_remix_target,
    is_storyboard,
    normalize_style,
    rewrite_storyboard,
)
from shared.resources import Resources

log = logging.getLogger("api.requests")
_ERROR_PATH = re.compile(r"at `\$\.([A-Za-z0-9_]+)")
Typed = TypeVar("Typed", bound=msgspec.Struct)
# How long the API trusts "some account can make this" before asking Postgres again (a no is never kept).
CAPABLE_TRUSTED_S = 5.0
# Where a reference image may come from, in order of preference (aliases of the dialects).
_IMAGE_FIELDS = (
    "input_reference",
    "input_reference[image_url]",
    "input_image",
    "image",
    "images",
    "image_urls",
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


def flag(value: Any, default: bool, param: str = "async_mode") -> bool:
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
    raise InvalidParam(f"expected a boolean, got {value!r}", param=param)


def convert_fields(fields: dict[str, Any], into: type[Typed]) -> Typed:
    """The known fields of a request, typed; a field of the wrong type (a list, an object, a file where a
    string belongs) is a 400 naming it rather than being ignored."""
    try:
        return msgspec.convert(fields, into, strict=False)
    except msgspec.ValidationError as exc:
        match = _ERROR_PATH.search(str(exc))
        raise InvalidParam(f"Invalid request: {exc}", param=match.group(1) if match else None) from None


def check_prompt(value: str | None, resources: Resources) -> str:
    prompt = (value or "").strip()
    if not prompt:
        raise InvalidParam("'prompt' is required", param="prompt", code="missing_required_parameter")
    limit = resources.settings.prompt_max_chars
    if len(prompt) > limit:
        raise InvalidParam(
            f"'prompt' is longer than {limit} characters", param="prompt", code="prompt_too_long"
        )
    return prompt


def check_metadata(metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        return
    refuse_nul({"metadata": metadata})
    if len(msgspec.json.encode(metadata)) > METADATA_MAX_BYTES:
        raise InvalidParam(
            f"'metadata' is larger than {METADATA_MAX_BYTES // 1024} KiB as JSON", param="metadata"
        )


class VideoCreate(msgspec.Struct):
    """Lenient on input: strings or numbers, aliases, and unknown fields ignored."""

    prompt: str | None = None
    model: str | None = None
    seconds: int | str | None = None
    duration: int | str | None = None
    size: str | None = None
    orientation: str | None = None
    aspect_ratio: str | None = None
    style_id: str | None = None
    style: str | None = None
    remix_target_id: str | None = None
    metadata: dict[str, Any] | None = None


_ASPECT = {"16:9": "landscape", "9:16": "portrait"}


async def read_fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form()
        except (ValueError, LookupError):  # a part in an unknown charset, or not in the one it names
            raise BadRequest("The form body could not be read: a field is not valid text") from None
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            fields.setdefault(key, value)
        refuse_nul({key: value for key, value in fields.items() if isinstance(value, str)})
        return fields
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("The request body is empty; send JSON or multipart/form-data")
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("The request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply") from None
    if not isinstance(decoded, dict):
        raise BadRequest("The request body must be a JSON object")
    refuse_nul_in_json(raw, decoded)
    return decoded


def _present(value: Any) -> bool:
    return isinstance(value, UploadFile) or value not in (None, "", [], {})


def _image_source(fields: dict[str, Any]) -> tuple[str, Any] | None:
    for name in _IMAGE_FIELDS:
        value = fields.get(name)
        if isinstance(value, list):
            value = next((item for item in value if _present(item)), None)
        if isinstance(value, dict):
            value = value.get("image_url") or value.get("url")
            if isinstance(value, dict):  # {"image_url": {"url": …}} as chat parts send it
                value = value.get("url")
        if _present(value):
            return name, value
    return None


async def reference_image(fields: dict[str, Any], job_id: str, resources: Resources) -> dict[str, Any] | None:
    """Stages an uploaded or inline image, or checks a remote URL for the worker to fetch."""
    found = _image_source(fields)
    if found is None:
        return None
    param, value = found
    if isinstance(value, UploadFile):
        image = image_from_bytes(await value.read(), param=param)
    elif isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        await check_url(value.strip(), param=param)
        return {"url": value.strip(), "param": param}
    elif isinstance(value, str):
        image = decode_inline_image(value, param=param)
    else:
        raise InvalidParam("expected an image file, base64, a data URL or an https URL", param=param)
    return await stage_image(resources, job_id, image)


async def stage_image(resources: Resources, job_id: str, image: InputImage) -> dict[str, Any]:
    key = f"inputs/{job_id}/reference.{image.extension}"

    async def body():
        yield image.data

    await resources.storage.write(key, body())
    return {"key": key, "content_type": image.content_type}


async def start_jobs(resources: Resources, *job_ids: str) -> None:
    """Sends committed jobs to the workers and announces them to live job lists (the console), batched with
    the other requests of the moment (``shared.admission``).

    Neither may fail the create: a job whose message was lost is sent again by the sweeper, and an
    announcement is only a convenience for a page that is open.
    """
    try:
        await resources.admission.start(job_ids)
    except Exception:
        log.exception("enqueue of %s failed; the sweeper will retry it", ", ".join(job_ids))


async def discard_inputs(resources: Resources, *ids: str) -> None:
    """Removes what was staged for jobs that will not be stored (a refused or repeated create)."""
    for staged in filter(None, ids):
        try:
            await resources.storage.delete_prefix(f"inputs/{staged}")
        except Exception:
            log.warning("could not remove the staged inputs of %s", staged, exc_info=True)


async def ensure_capable(resources: Resources, kind: str, *, requires_pro: bool) -> None:
    """Refuses at once what no account could ever make, rather than queueing it until its deadline."""
    if await resources.pool.any_capable(kind, requires_pro=requires_pro, trust_yes_for=CAPABLE_TRUSTED_S):
        return
    if requires_pro:
        message = "No account in the pool has a Pro plan, which pro models, HD sizes and 25 s videos need"
    else:
        message = f"No enabled account in the pool can make {kind}s"
    raise InvalidParam(message, param="model", code="no_capable_account")


async def plan_video_job(
    fields: dict[str, Any],
    *,
    owner: str,
    idempotency_key: str | None,
    resources: Resources,
    remix_of: Job | None = None,
    remix_target: str | None = None,
) -> Job:
    known = {name: fields[name] for name in VideoCreate.__struct_fields__ if name in fields}
    if isinstance(known.get("metadata"), str):  # a multipart field
        try:
            known["metadata"] = msgspec.json.decode(known["metadata"])
        except (msgspec.DecodeError, RecursionError):
            raise InvalidParam("'metadata' must be a JSON object", param="metadata") from None
    request = convert_fields(known, VideoCreate)
    check_metadata(request.metadata)

    prompt = check_prompt(request.prompt, resources)

    model = (request.model or "sora-2").strip()
    spec = parse_model(model)
    if spec.kind == "character":
        raise InvalidParam(f"'{model}' makes characters; use /v1/characters", param="model")
    if spec.kind != "video":
        raise InvalidParam(f"'{model}' is an image model; use /v1/images/generations", param="model")
    job_id = new_video_id()
    style = normalize_style(request.style_id or request.style)
    text, prompt_style = extract_style(prompt)
    params: dict[str, Any] = {"style_id": style or prompt_style, "operation": "create"}
    orientation = request.orientation or _ASPECT.get((request.aspect_ratio or "").strip())
    if request.aspect_ratio and orientation is None:
        raise InvalidParam("'aspect_ratio' must be 16:9 or 9:16", param="aspect_ratio")
    seconds = request.seconds if request.seconds not in (None, "") else request.duration
    remixed_from = None

    if spec.extension:
        text, generation_id = find_generation_id(text)
        source = await resources.jobs.by_generation_id(generation_id, owner) if generation_id else None
        if source is None or source.account_id is None:
            raise InvalidParam(
                "Extension models continue one of your finished videos: put its gen_… id in the prompt",
                param="prompt",
                code="generation_not_found",
            )
        params.update(
            operation="extension",
            generation_id=generation_id,
            sticky_account_id=source.account_id,
            extension_duration_s=spec.seconds,
            requires_pro=False,
            orientation=source.params.get("orientation", "portrait"),
        )
        total_seconds, size = source.seconds + (spec.seconds or 10), source.size
    else:
        video = resolve_video_params(spec, seconds=seconds, size=request.size, orientation=orientation)
        params.update(
            orientation=video.orientation,
            n_frames=video.n_frames,
            upstream_model=video.upstream_model,
            upstream_size=video.upstream_size,
            requires_pro=video.requires_pro,
        )
        total_seconds, size = video.seconds, video.size
        text, target = find_remix_target(text, remix_target or request.remix_target_id)
        if remix_of is not None:
            params.update(operation="remix", remix_source_job=remix_of.id)
            remixed_from = remix_of.id
        elif target is not None:
            params.update(operation="remix", remix_target_id=target)
            remixed_from = target
        elif is_storyboard(text):
            params.update(operation="storyboard", upstream_size="small", upstream_model="sy_8")
            text = rewrite_storyboard(text)
        if params["operation"] != "create" and _image_source(fields) is not None:
            raise InvalidParam(
                "A reference image cannot be combined with a remix or a storyboard", param="input_reference"
            )
    params["upstream_prompt"] = text
    await ensure_capable(resources, "video", requires_pro=bool(params.get("requires_pro")))
    params["watermark_free"] = not flag(
        fields.get("watermark"), default=not resources.settings.watermark_free, param="watermark"
    )
    # Last, so a refused request leaves nothing staged behind.
    if params["operation"] == "create":
        reference = await reference_image(fields, job_id, resources)
        if reference is not None:
            params["input_image"] = reference

    # Built without SQLAlchemy's instance state (160 → 28 µs): read-only until shared.admission stores it
    # with a Core INSERT. Whatever changes it first takes ``shared.admission.session_copy``.
    return Job.model_construct(
        id=job_id,
        kind="video",
        owner=owner,
        idempotency_key=idempotency_key,
        request_hash=fingerprint(fields) if idempotency_key else None,
        state=JobState.QUEUED,
        model=model,
        prompt=prompt,
        seconds=total_seconds,
        size=size,
        params=params,
        user_metadata=request.metadata,
        remixed_from_video_id=remixed_from,
        # Given, not defaulted: pydantic inspects a default factory's signature on every construction.
        attempts=[],
        **new_job_times(resources.settings.job_deadline_s),
    )
