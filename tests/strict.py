"""Strict decoders for what clients rely on: exact types, no extra keys, canonical values."""

from __future__ import annotations

from typing import Literal

import msgspec

# API contract §1: phrases that make NewAPI or OneAPI disable a channel; never in a message we answer.
CHANNEL_KILLING_PHRASES = (
    "credit",
    "balance",
    "quota",
    "permission denied",
    "violation of our policies",
    "organization has been disabled",
    "api key not valid",
    "api key expired",
    "your access was terminated",
)


class StrictError(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    code: str


class StrictData(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    revised_prompt: str


class StrictVideo(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    seconds: str
    size: str
    prompt: str
    remixed_from_video_id: str | None
    error: StrictError | None
    data: list[StrictData] | msgspec.UnsetType = msgspec.UNSET


class StrictErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    class Inner(msgspec.Struct, forbid_unknown_fields=True):
        message: str
        type: str
        param: str | None
        code: str | None

    error: Inner


def video(body: bytes) -> StrictVideo:
    parsed = msgspec.json.decode(body, type=StrictVideo, strict=True)
    assert parsed.id.startswith("video_") and len(parsed.id) == len("video_") + 32
    assert 0 <= parsed.progress <= 100
    if parsed.status == "queued":
        assert parsed.progress == 0
    if parsed.status == "in_progress":
        assert 1 <= parsed.progress <= 99
    if parsed.status == "completed":
        assert parsed.progress == 100 and parsed.completed_at is not None and parsed.data
    if parsed.status == "failed":
        assert parsed.error is not None
    else:
        assert parsed.error is None
    return parsed


def error(body: bytes) -> StrictErrorBody.Inner:
    return msgspec.json.decode(body, type=StrictErrorBody, strict=True).error
