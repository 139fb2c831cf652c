"""Account secrets at rest, masking, and client-key fingerprints."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


class SecretUnreadable(RuntimeError):
    """A stored secret was sealed with another ENCRYPTION_KEY (or damaged): the account is unusable."""


class SecretBox:
    """Encrypts account tokens with a Fernet key derived from the ENCRYPTION_KEY setting."""

    def __init__(self, key_material: str) -> None:
        if not key_material:
            raise RuntimeError("ENCRYPTION_KEY is not set; it is required to store account secrets")
        digest = hashlib.sha256(key_material.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def seal_optional(self, value: str | None) -> str | None:
        return None if value is None else self.seal(value)

    def open(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "an account secret cannot be decrypted: was ENCRYPTION_KEY changed?"
            ) from exc

    def open_optional(self, value: str | None) -> str | None:
        return None if value is None else self.open(value)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mask(secret: str | None) -> str | None:
    if not secret:
        return None
    if len(secret) <= 12:
        return "****"
    return f"{secret[:6]}…{secret[-4:]}"


@functools.lru_cache(maxsize=1024)
def key_fingerprint(api_key: str) -> str:
    """Stable owner id for a client key; the key itself is never stored (in Postgres: this process keeps
    the keys of its last 1,024 callers in memory, as it sees them in every request anyway)."""
    return hashlib.sha256(b"client-key:" + api_key.encode()).hexdigest()[:24]


def sign(secret: str, message: str) -> str:
    mac = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def verify(secret: str, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, message), signature)
