"""Chat completions (contract section 5): any generation asked for in a chat message, streamed as it happens.

The last user message is the request. A stream relays the job's events as
``chat.completion.chunk``s with structured ``reasoning_content``; a client that
goes away does not cancel the job, which stays visible at /v1/videos/tasks/{id}.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.response import Stream

from api.auth import client_auth
from api.routes.characters import submit_character
from api.routes.images import submit_images
from api.routes.videos import submit_video
from api.schemas import character_fields, content_url
from api.video_requests import read_fields
from api.watch import follow, wait_until_done
from shared.errors import BadRequest, InvalidParam
from shared.events import JobEvent
from shared.modelids import parse_model
from shared.models import Job, JobState
from shared.prompts import find_generation_id
from shared.resources import Resources

_encode = msgspec.json.Encoder().encode
# Generation-phase stage names by operation, in the vocabulary chat front ends know.
_STAGE = {"remix": "remix", "storyboard": "storyboard"}


class ChatController(Controller):
    path = "/v1/chat/completions"
    before_request = client_auth
    tags = ["chat"]

    @post("", operation_id="createChatCompletion", status_code=200)
    async def create(
        self,
        request: Request,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
    ) -> Response:
        body = await read_fields(request)
        model = _typed(body, "model", str) or "sora-2"
        response_format = _typed(body, "response_format", dict) or {}
        stream_options = _typed(body, "stream_options", dict) or {}
        stream = body.get("stream") is True
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if (
            not stream
            and isinstance(max_tokens, int)
            and max_tokens <= services.settings.channel_test_max_tokens
        ):
            return Response(await _health_check(services, model))

        texts, image, video = _message_parts(body)
        spec = parse_model(model)
        if video or spec.kind == "character":
            fields, prompt = _character_fields(body, texts, video)
            job = await submit_character(request, services, channels, fields)
        else:
            fields, prompt = _generation_fields(body, texts, image)
            if spec.kind == "image":
                job = (await submit_images(request, services, {**fields, "n": 1}))[0]
            else:
                job = await submit_video(request, services, fields)
        as_json = response_format.get("type") == "json_object"
        reply = _Reply(job, model, prompt, services, as_json=as_json)
        if stream:
            include_usage = bool(stream_options.get("include_usage"))
            return Stream(
                reply.stream(channels, include_usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        await wait_until_done(channels, services, job.id, services.settings.sync_wait_s)
        return Response(reply.completion(await services.jobs.get(job.id) or job))


def _typed(body: dict[str, Any], name: str, kind: type) -> Any:
    """An optional field that must have one type when present (``model`` a string, ``stream_options`` an
    object, …)."""
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        expected = "a string" if kind is str else "an object"
        raise InvalidParam(f"'{name}' must be {expected}", param=name)
    return value


def _message_parts(body: dict[str, Any]) -> tuple[list[str], Any, Any]:
    """The texts, the image and the video of the last user message (the parts win over the extras)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidParam("'messages' must be a non-empty list", param="messages")
    user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not user:
        raise InvalidParam("'messages' needs a user message", param="messages")
    content = user[-1].get("content")
    texts: list[str] = []
    image: Any = body.get("image")
    video: Any = body.get("video")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                url = part.get("image_url")
                image = url.get("url") if isinstance(url, dict) else url
            elif kind == "video_url":
                url = part.get("video_url")
                video = url.get("url") if isinstance(url, dict) else url
    else:
        raise InvalidParam("The last user message has no content", param="messages")
    return texts, image, video


def _character_fields(body: dict[str, Any], texts: list[str], video: Any) -> tuple[dict[str, Any], str]:
    """A character from the message's video, or (``avatar-create``) from a ``gen_…`` draft in its text."""
    options = body.get("character_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidParam("'character_options' must be an object", param="character_options")
    prompt = "\n".join(text.strip() for text in texts if text.strip())
    fields: dict[str, Any] = {**(options or {}), "model": body.get("model") or "avatar-create"}
    if video:
        fields["video"] = video
    else:
        _, generation_id = find_generation_id(prompt)
        if generation_id is None:
            raise InvalidParam(
                "A character needs a video: send a video_url part or 'video' (or a gen_… id of one of "
                "your videos in the text)",
                param="messages",
                code="missing_required_parameter",
            )
        fields["from_task"] = generation_id
    return fields, prompt or "character"


def _generation_fields(body: dict[str, Any], texts: list[str], image: Any) -> tuple[dict[str, Any], str]:
    """The generation request in the last user message (text and image parts) and the top-level extras."""
    if body.get("character_options"):
        raise InvalidParam(
            "'character_options' makes a character from a video: send a video_url part or 'video'",
            param="character_options",
            code="missing_required_parameter",
        )
    prompt = "\n".join(text.strip() for text in texts if text.strip())
    if not prompt:
        raise InvalidParam("The last user message has no text to use as the prompt", param="messages")
    fields: dict[str, Any] = {"prompt": prompt, "model": body.get("model") or "sora-2"}
    for extra in ("style_id", "style", "remix_target_id", "seconds", "size", "orientation", "watermark"):
        if body.get(extra) is not None:
            fields[extra] = body[extra]
    if image:
        fields["input_reference"] = image
    return fields, prompt


async def _health_check(services: Resources, model: str) -> dict[str, Any]:
    """NewAPI and OneAPI test channels with a tiny request: answer at once, start nothing."""
    try:
        kind = parse_model(model).kind
    except BadRequest:
        kind = "video"
    ready = await services.pool.any_eligible(kind)
    text = (
        "OK: the account pool can take requests" if ready else "The account pool has no account available now"
    )
    return _completion_body(f"chatcmpl-{int(time.time() * 1000)}", model, text, prompt_tokens=1)


def _completion_body(chat_id: str, model: str, content: str, *, prompt_tokens: int) -> dict[str, Any]:
    completion = max(1, len(content) // 4)
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


class _Reply:
    def __init__(self, job: Job, model: str, prompt: str, services: Resources, *, as_json: bool) -> None:
        self.job = job
        self.model = model
        self.services = services
        self.as_json = as_json
        self.chat_id = "chatcmpl-" + job.id.split("_", 1)[-1]
        self.created = int(time.time())
        self.prompt_tokens = max(1, len(prompt) // 4)

    # Final text -------------------------------------------------------------------

    def result_text(self, job: Job) -> str:
        if job.state == JobState.FAILED:
            message = job.error_message or "Generation failed"
            if self.as_json:
                return _encode(
                    {"type": "error", "error": {"message": message, "code": job.error_code}}
                ).decode()
            return f"Generation failed: {message}"
        if job.kind == "character":
            return self._character_text(job)
        url = content_url(job, self.services.settings.public_base_url, self.services.url_key)
        if job.kind == "image":
            if self.as_json:
                return _encode({"type": "image", "urls": [url], "count": 1, "data": [{"url": url}]}).decode()
            return f"![Generated Image]({url})"
        if self.as_json:
            body = {"type": "video", "url": url, "data": [{"url": url, "revised_prompt": None}]}
            return _encode(body).decode()
        return f"<video src='{url}' controls></video>\n\n[Download the video]({url})"

    def _character_text(self, job: Job) -> str:
        made = character_fields(job)
        if self.as_json:
            data = {**msgspec.structs.asdict(made), "id": job.id, "mention": f"@{made.username}"}
            return _encode({"type": "character", "data": data}).decode()
        name = f" ({made.display_name})" if made.display_name and made.display_name != made.username else ""
        return (
            f"Character created: **@{made.username}**{name}\n\n"
            f"Put `@{made.username}` in a video prompt to cast it, "
            f"e.g. `@{made.username} walks through a snowy forest`."
        )

    def completion(self, job: Job) -> dict[str, Any]:
        if not job.is_terminal:
            text = f"The job is still running; follow it at /v1/videos/tasks/{job.id}"
        else:
            text = self.result_text(job)
        return _completion_body(self.chat_id, self.model, text, prompt_tokens=self.prompt_tokens)

    # Stream -----------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            "id": self.chat_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + _encode(chunk) + b"\n\n"

    def _reasoning(self, event: JobEvent, first: bool) -> dict[str, Any]:
        stage = event.stage
        if stage == "generation":
            stage = _STAGE.get(self.job.params.get("operation", ""), "generation")
        if event.status == "failed":
            status = "error"
        elif event.status == "completed":
            status = "completed"
        else:
            status = "started" if first else "processing"
        return {
            "stage": stage,
            "status": status,
            "progress": event.progress,
            "message": event.message or _MESSAGES.get(event.state, "Working"),
            "details": {"task_id": self.job.id, "state": event.state},
            "timestamp": int(event.ts),
        }

    async def stream(self, channels: ChannelsPlugin, include_usage: bool) -> AsyncIterator[bytes]:
        first = True
        keepalive_s = self.services.settings.sse_keepalive_s
        events = follow(channels, self.services, self.job.id, keepalive_s=keepalive_s, stream="chat")
        async with contextlib.aclosing(events):
            async for event in events:
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                delta: dict[str, Any] = {"reasoning_content": self._reasoning(event, first)}
                if first:
                    delta = {"role": "assistant", "content": None, **delta}
                    first = False
                yield self._chunk(delta)
                if event.terminal:
                    break
        job = await self.services.jobs.get(self.job.id) or self.job
        text = self.result_text(job)
        yield self._chunk({"content": text}, finish_reason="stop")
        if job.state == JobState.FAILED:
            error = {
                "message": job.error_message,
                "type": "server_error",
                "param": None,
                "code": job.error_code,
            }
            yield b"data: " + _encode({"error": error}) + b"\n\n"
        elif include_usage:
            completion = max(1, len(text) // 4)
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
            }
            chunk = {
                "id": self.chat_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            }
            yield b"data: " + _encode(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"


_MESSAGES = {
    JobState.QUEUED: "Waiting for a free account",
    JobState.SUBMITTING: "Sending the request",
    JobState.RUNNING: "Generating",
    JobState.FINALIZING: "Saving the result",
    JobState.COMPLETED: "Done",
    JobState.FAILED: "Failed",
}
