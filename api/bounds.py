"""Bounds on what a client may send, checked before anything is stored.

Postgres cannot store a NUL character in text or JSONB, nor an integer past its column's range; a JSON
body nested deeper than the decoder's recursion limit cannot be read at all. Each of these is the
client's mistake, so each is a 400 naming the field, never a database error rendered as a 500.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from shared.errors import InvalidParam

# Integer ids (accounts, API keys) are Postgres ``integer`` columns.
INT32_MAX = 2**31 - 1
IDEMPOTENCY_KEY_MAX_CHARS = 255
METADATA_MAX_BYTES = 16 * 1024


def nul_path(value: Any) -> str | None:
    """The field (``a``, ``a.b``, ``a[2]``) of the first string or key holding a NUL character, if any.

    Iterative, so a body nested as deep as the JSON decoder allows cannot exhaust the stack here.
    """
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                name = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return name
                pending.append((name, child))
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", child) for index, child in reversed(list(enumerate(item))))
    return None


def refuse_nul(value: Any) -> None:
    found = nul_path(value)
    if found is not None:
        shown = found.replace("\x00", "\\0")
        top = shown.split(".", 1)[0].split("[", 1)[0]
        raise InvalidParam(f"'{shown}' contains a NUL character", param=top or None)


def refuse_nul_in_json(raw: bytes, decoded: Any) -> None:
    """A JSON string holds a NUL only as the escape ``\\u0000``: most bodies are cleared without a walk."""
    if b"\\u0000" in raw:
        refuse_nul(decoded)


def check_text(value: str | None, param: str) -> str | None:
    """Text stored as it is (labels, remarks, URLs): no NUL characters."""
    if value is not None and "\x00" in value:
        raise InvalidParam(f"'{param}' contains a NUL character", param=param)
    return value


def row_id(value: int) -> bool:
    """Whether ``value`` can be the id of a row (a positive Postgres ``integer``)."""
    return 0 < value <= INT32_MAX


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key") or None
    if key is None:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS or not key.isprintable():
        raise InvalidParam(
            f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX_CHARS} printable characters",
            param="Idempotency-Key",
        )
    return key
