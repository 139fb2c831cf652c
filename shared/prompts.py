"""Prompt conventions shared by every route: styles (upstream reference, section 7.3)."""

from __future__ import annotations

import re

from shared.errors import InvalidParam

STYLES: tuple[str, ...] = (
    "festive",
    "kakalaka",
    "news",
    "selfie",
    "handheld",
    "golden",
    "anime",
    "retro",
    "nostalgic",
    "comic",
)
# Names other gateways documented for the same upstream styles.
STYLE_ALIASES: dict[str, str] = {"thanksgiving": "festive"}

_BRACED = re.compile(r"\{([^}]*)\}")
_SPACES = re.compile(r"[^\S\n]+")
_SPACES_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def _lookup(word: str) -> str | None:
    key = word.strip().lower()
    key = STYLE_ALIASES.get(key, key)
    return key if key in STYLES else None


def normalize_style(value: str | None) -> str | None:
    """An explicit ``style_id``/``style`` field as the upstream id; None when not given."""
    if value is None or not str(value).strip():
        return None
    style = _lookup(str(value))
    if style is None:
        raise InvalidParam(
            f"Unknown style {str(value).strip()!r}; valid styles are: {', '.join(STYLES)}.",
            param="style_id",
        )
    return style


def extract_style(prompt: str) -> tuple[str, str | None]:
    """Take a ``{style}`` out of the prompt: ``("a cat {anime}", ...)`` -> ``("a cat", "anime")``.

    Only the first ``{...}`` group decides. If it is not a single known style word the
    prompt goes upstream untouched, because braces may be part of what the user wants
    rendered. Line breaks survive the whitespace clean-up so storyboard shots and
    multi-line prompts keep their layout.
    """
    first = _BRACED.search(prompt)
    if first is None:
        return prompt, None
    style = _lookup(first.group(1))
    if style is None:
        return prompt, None
    cleaned = _BRACED.sub(" ", prompt)
    cleaned = _SPACES.sub(" ", cleaned)
    cleaned = _SPACES_AROUND_NEWLINE.sub("\n", cleaned)
    cleaned = _BLANK_LINES.sub("\n\n", cleaned)
    return cleaned.strip(), style
