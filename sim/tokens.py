"""Identifiers and JWT-shaped access tokens.

ATs are HS256-signed with a per-process secret so they look like the real thing, but the simulator never
checks the signature either: it looks tokens up in its registry, and reads claims only from tokens that a
test registers verbatim.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
from typing import Any

PROFILE_CLAIM = "https://api.openai.com/profile"
AUTH_CLAIM = "https://api.openai.com/auth"
_ALNUM = string.ascii_lowercase + string.digits
_SECRET = secrets.token_bytes(32)


def rand_alnum(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def task_id() -> str:
    return "task_01" + rand_alnum(26)


def generation_id() -> str:
    return "gen_01" + rand_alnum(26)


def media_id() -> str:
    return "media_01" + rand_alnum(26)


def file_id() -> str:
    return "file_" + secrets.token_hex(16)


def post_id() -> str:
    return "s_" + secrets.token_hex(16)


def cameo_id() -> str:
    return "cameo_" + secrets.token_hex(16)


def character_id() -> str:
    return "ch_" + secrets.token_hex(16)


def invite_code() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(6))


def account_id() -> str:
    return "acct_" + secrets.token_hex(8)


def user_id() -> str:
    return "user-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def opaque(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_jwt(*, sub: str, email: str, iat: float, exp: float, client_id: str, plan: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": "sora-sim"}
    payload = {
        "aud": ["https://api.openai.com/v1"],
        "client_id": client_id,
        "exp": int(exp),
        "iat": int(iat),
        "iss": "https://auth.openai.com",
        # jti keeps two tokens minted in the same second for the same account distinct.
        "jti": secrets.token_hex(16),
        "scp": ["openid", "email", "profile", "offline_access"],
        "sub": sub,
        PROFILE_CLAIM: {"email": email, "email_verified": True},
        AUTH_CLAIM: {"user_id": sub, "chatgpt_plan_type": plan.removeprefix("chatgpt_")},
    }
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(payload, separators=(",", ":")).encode())
    )
    sig = hmac.new(_SECRET, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)


def decode_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT-shaped string, unverified; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def sign(text: str) -> str:
    return base64.b64encode(hmac.new(_SECRET, text.encode(), hashlib.sha256).digest()).decode()
