"""Prompt conventions shared by every route (upstream reference, section 7).

Styles (7.3), storyboards (7.4), remix targets (7.5) and generation ids (7.6) are read out
of the prompt text. ``@username`` mentions (7.7) are never parsed: every function here
leaves them exactly as written, because the upstream resolves them itself.
"""

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
    return _tidy(_BRACED.sub(" ", prompt)), style


def _tidy(text: str) -> str:
    """Close the gaps removed tokens leave, but keep line breaks (storyboard shots, multi-line prompts)."""
    text = _SPACES.sub(" ", text)
    text = _SPACES_AROUND_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


# ---------------------------------------------------------------------------------------
# Ids in the prompt: remix targets (section 7.5) and generation ids (section 7.6)

# Post ids are lower-case hex upstream (the reference's glossary): "s_" plus upper-case hex is plain text.
_POST_ID = r"s_[a-f0-9]{32}"
_GENERATION_ID = r"gen_[A-Za-z0-9]+"
# Any host, not just sora.chatgpt.com: hosts are settings (section 1), so a simulator hands out its own share
# links. A link may also be pasted without its scheme. It starts a token, and the part before the id is
# bounded, so a long run of link-like text costs linear time, not quadratic.
_LINK_HEAD = r"(?<![\w@./:-])(?i:https?://|(?:[a-z0-9-]+\.)+[a-z]{2,}/)\S{0,2000}?"
# Punctuation after a link ends the sentence, not the link.
_LINK_END = r"""(?=[.,;:!?)\]}>"']*(?:\s|$))"""


def _ids_in_text(id_pattern: str) -> re.Pattern[str]:
    # A mention is matched first and put back as it was, so "@gen_fan" or "@bob.s_..." is never
    # mistaken for an id. An id glued to other word characters (a longer hex run, "regen_x") is not an id,
    # and cutting part of it out would mangle the prompt.
    return re.compile(
        r"(?P<mention>(?<!\w)@[\w.-]+)"
        rf"|{_LINK_HEAD}(?<=[/=])(?P<linked>{id_pattern})(?!\w)(?:[/?#&]\S*?)?{_LINK_END}"
        rf"|(?<!\w)(?P<bare>{id_pattern})(?!\w)"
    )


_POST_IDS = _ids_in_text(_POST_ID)
_GENERATION_IDS = _ids_in_text(_GENERATION_ID)
_EXPLICIT_POST = re.compile(rf"(?:{_LINK_HEAD}(?<=[/=]))?(?P<id>{_POST_ID})(?:[/?#&]\S*)?")


def _take_ids(prompt: str, pattern: re.Pattern[str]) -> tuple[str, list[str]]:
    """Every id, with any link around it, out of the prompt; untouched when there is none."""
    found: list[str] = []

    def cut(m: re.Match[str]) -> str:
        if m.group("mention") is not None:
            return m.group(0)
        found.append(m.group("linked") or m.group("bare"))
        return " "

    cleaned = pattern.sub(cut, prompt)
    return (_tidy(cleaned), found) if found else (prompt, found)


def find_remix_target(prompt: str, explicit: str | None = None) -> tuple[str, str | None]:
    """The post to remix and the prompt without it.

    ``find_remix_target("remix s_<hex> at night")`` -> ``("remix at night", "s_<hex>")``.

    The target is the first ``s_`` + 32 lower-case hex id in the text, bare or inside a share
    link such as ``https://sora.chatgpt.com/p/s_<hex>?psh=...``. An explicit ``remix_target_id``
    (a bare id or a share link) wins over the text. Either way every id and link is taken out of
    the prompt: the upstream gets the target as a field, and a link left in the text would only
    be rendered as words. Raises InvalidParam for an explicit value that is neither.
    """
    cleaned, found = _take_ids(prompt, _POST_IDS)
    # Clients send an empty string for a field they did not mean to set.
    if isinstance(explicit, str) and not explicit.strip():
        explicit = None
    if explicit is not None:
        return cleaned, _explicit_post_id(explicit)
    return cleaned, (found[0] if found else None)


def _explicit_post_id(value: object) -> str:
    m = _EXPLICIT_POST.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidParam(
            "remix_target_id must be a post id (s_ followed by 32 lower-case hex digits) or its share link "
            f"https://sora.chatgpt.com/p/s_...; got {value!r}.",
            param="remix_target_id",
        )
    return m.group("id")


def find_generation_id(prompt: str) -> tuple[str, str | None]:
    """The draft an extension or character starts from, and the prompt without it.

    ``find_generation_id("gen_01abc make it rain")`` -> ``("make it rain", "gen_01abc")``.
    The first ``gen_`` id wins; every one of them, and any link around it, is taken out of the
    prompt.
    """
    cleaned, found = _take_ids(prompt, _GENERATION_IDS)
    return cleaned, (found[0] if found else None)


# ---------------------------------------------------------------------------------------
# Storyboards (section 7.4)

_STORYBOARD_MARK = re.compile(r"\[\d+(?:\.\d+)?s\]")
_STORYBOARD_SHOT = re.compile(r"\[(\d+(?:\.\d+)?)s\]\s*([^\[]+)")


def is_storyboard(prompt: str) -> bool:
    """True when the prompt holds at least one shot mark such as ``[5.0s]`` or ``[5s]``."""
    return _STORYBOARD_MARK.search(prompt) is not None


def rewrite_storyboard(prompt: str) -> str:
    """The storyboard text the upstream expects, built from ``[<seconds>s] <scene>`` segments.

    For example::

        A rainy city at night. [5.0s] a cat walks in [5s] the cat looks up

    becomes::

        current timeline:
        Shot 1:
        duration: 5.0sec
        Scene: a cat walks in

        Shot 2:
        duration: 5sec
        Scene: the cat looks up

        instructions:
        A rainy city at night.

    Durations are kept as written. The text before the first ``[`` is the instructions; without
    any, the result is the shots alone. A scene runs up to the next ``[``, so a bracket inside a
    scene ends it (the upstream gateways did the same). A mark with no scene text after it makes
    no shot, since the upstream would get an empty scene. A prompt with no shot comes back as it is.
    """
    shots = [(seconds, scene.strip()) for seconds, scene in _STORYBOARD_SHOT.findall(prompt)]
    shots = [(seconds, scene) for seconds, scene in shots if scene]
    if not shots:
        return prompt
    timeline = "\n\n".join(
        f"Shot {i}:\nduration: {seconds}sec\nScene: {scene}" for i, (seconds, scene) in enumerate(shots, 1)
    )
    instructions = prompt[: prompt.index("[")].strip()
    if not instructions:
        return timeline
    return f"current timeline:\n{timeline}\n\ninstructions:\n{instructions}"
