"""Reads an access token's claims without checking its signature (we are not its audience)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec

from shared.timeutil import from_epoch

PROFILE_CLAIM = "https://api.openai.com/profile"


def claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        decoded = msgspec.json.decode(base64.urlsafe_b64decode(payload))
    except (ValueError, msgspec.DecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def expiry(token: str) -> datetime | None:
    found = claims(token) or {}
    exp = found.get("exp")
    return from_epoch(exp) if isinstance(exp, int | float) else None


def email(token: str) -> str | None:
    profile = (claims(token) or {}).get(PROFILE_CLAIM)
    if isinstance(profile, dict) and isinstance(profile.get("email"), str):
        return profile["email"]
    return None
