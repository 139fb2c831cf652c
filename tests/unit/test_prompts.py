from __future__ import annotations

import pytest

from shared.errors import InvalidParam
from shared.prompts import STYLE_ALIASES, STYLES, extract_style, normalize_style


def test_style_list_matches_the_contract():
    assert STYLES == (
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
    assert STYLE_ALIASES == {"thanksgiving": "festive"}


@pytest.mark.parametrize("style", STYLES)
def test_every_style_normalizes_to_itself(style):
    assert normalize_style(style) == style
    assert normalize_style(style.upper()) == style


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Anime ", "anime"),
        ("thanksgiving", "festive"),
        ("Thanksgiving", "festive"),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_normalize_style(value, expected):
    assert normalize_style(value) == expected


@pytest.mark.parametrize("value", ["natural", "vivid", "anime2", "{anime}", "golden hour", "none"])
def test_unknown_style_is_invalid_and_lists_the_valid_ones(value):
    with pytest.raises(InvalidParam) as info:
        normalize_style(value)
    err = info.value
    assert err.param == "style_id"
    assert err.code == "invalid_value"
    assert all(style in err.message for style in STYLES)


EXTRACTED = [
    ("a cat surfing {anime}", "a cat surfing", "anime"),
    ("{Anime} a cat", "a cat", "anime"),
    ("{ANIME} a cat", "a cat", "anime"),
    ("a cat {thanksgiving} dinner", "a cat dinner", "festive"),
    ("a { comic } cat", "a cat", "comic"),
    ("{anime}", "", "anime"),
    # Only the first group decides; every group is removed.
    ("a {retro} cat {anime}", "a cat", "retro"),
    ("a {news} cat {with a hat}", "a cat", "news"),
    ("a {anime}{news} cat", "a cat", "anime"),
    # Whitespace collapses, line breaks survive.
    ("a   cat\t{golden}  at dusk", "a cat at dusk", "golden"),
    ("line one {news}\n   line two", "line one\nline two", "news"),
    ("[5.0s] a cat {anime}\n[5.0s] a dog", "[5.0s] a cat\n[5.0s] a dog", "anime"),
    ("intro {selfie}\n\n\n\nmore", "intro\n\nmore", "selfie"),
    # Mentions pass through.
    ("@alice dancing {selfie}", "@alice dancing", "selfie"),
]


@pytest.mark.parametrize(("prompt", "cleaned", "style"), EXTRACTED)
def test_extract_style(prompt, cleaned, style):
    assert extract_style(prompt) == (cleaned, style)


UNTOUCHED = [
    "a cat surfing",
    "",
    "a {watercolor} cat",
    "a {two words} cat",
    "a {anime style} cat",
    # The first group is not a style, so a later one does not count.
    "a {not a style} cat {anime}",
    "{} a cat {anime}",
    "unclosed {anime",
    "closing only anime}",
    'json-ish {"style": "anime"}',
    "nested {{anime}}",
    "  keeps   its   spacing  {watercolor}  ",
]


@pytest.mark.parametrize("prompt", UNTOUCHED)
def test_prompt_without_a_leading_style_group_is_untouched(prompt):
    cleaned, style = extract_style(prompt)
    assert style is None
    assert cleaned == prompt
