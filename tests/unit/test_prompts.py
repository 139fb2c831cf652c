from __future__ import annotations

import pytest

from shared.errors import InvalidParam
from shared.prompts import (
    STYLE_ALIASES,
    STYLES,
    extract_style,
    find_generation_id,
    find_remix_target,
    is_storyboard,
    normalize_style,
    rewrite_storyboard,
)


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


# ---------------------------------------------------------------------------------------
# Remix targets (upstream section 7.5)

POST = "s_" + "0123456789abcdef" * 2
OTHER = "s_" + "fedcba9876543210" * 2
LINK = f"https://sora.chatgpt.com/p/{POST}"

# prompt, explicit remix_target_id, cleaned prompt, target
REMIX = [
    (f"{POST} make it night", None, "make it night", POST),
    (f"make it night {POST}", None, "make it night", POST),
    (f"make it {POST} night", None, "make it night", POST),
    (f"{POST}", None, "", POST),
    (f"{LINK} make it night", None, "make it night", POST),
    (f"make it night {LINK}?psh=HXVzZXItMDFr&utm_source=share", None, "make it night", POST),
    (f"see {LINK}/ again", None, "see again", POST),
    (f"see {LINK}#top", None, "see", POST),
    (f"http://sora.chatgpt.com/p/{POST}", None, "", POST),
    (f"HTTPS://Sora.ChatGPT.com/p/{POST} x", None, "x", POST),
    # Without the scheme, or on another host (hosts are settings; a simulator has its own).
    (f"sora.chatgpt.com/p/{POST} x", None, "x", POST),
    (f"http://localhost:8080/p/{POST}?a=1 x", None, "x", POST),
    (f"x https://example.test/share?post={POST}", None, "x", POST),
    # Sentence punctuation after a link stays.
    (f"Remix ({LINK}?psh=1). Make it night.", None, "Remix ( ). Make it night.", POST),
    (f"Night, like {LINK}?psh=1.", None, "Night, like .", POST),
    (f"Remix {POST}, at night", None, "Remix , at night", POST),
    # The first id is the target; every id leaves the prompt.
    (f"{POST} then {OTHER}", None, "then", POST),
    # Line breaks survive, as in extract_style.
    (f"line one {POST}\n   line two", None, "line one\nline two", POST),
    (f"[5s] a cat {LINK}\n[5s] a dog", None, "[5s] a cat\n[5s] a dog", POST),
    # An explicit field wins over the text, as a bare id or a share link; ids in the text still go.
    ("make it night", OTHER, "make it night", OTHER),
    (f"{POST} make it night", OTHER, "make it night", OTHER),
    (f"{LINK} make it night", f"https://sora.chatgpt.com/p/{OTHER}?psh=abc", "make it night", OTHER),
    ("make it night", f"  {OTHER}  ", "make it night", OTHER),
    ("make it night", f"sora.chatgpt.com/p/{OTHER}", "make it night", OTHER),
    # A blank field counts as not given.
    (f"{POST} x", "", "x", POST),
    (f"{POST} x", "   ", "x", POST),
    # Mentions pass through.
    (f"@alice remixes {LINK} with @bob.smith", None, "@alice remixes with @bob.smith", POST),
    (f"<@ch_0123abcd> in {POST}", None, "<@ch_0123abcd> in", POST),
]


@pytest.mark.parametrize(("prompt", "explicit", "cleaned", "target"), REMIX)
def test_find_remix_target(prompt, explicit, cleaned, target):
    assert find_remix_target(prompt, explicit) == (cleaned, target)


NO_REMIX = [
    "a cat surfing",
    "",
    "  keeps   its   spacing  ",
    "@alice and @bob dance",
    # Post ids are lower-case hex upstream; upper-case hex is plain text.
    "s_" + "0123456789ABCDEF" * 2,
    f"S_{POST[2:]}",
    # 31 or 33 hex digits, or glued to other word characters, is not a post id.
    POST[:-1],
    POST + "a",
    POST + "_x",
    "x" + POST,
    "x_" + POST,
    # A mention that happens to look like one is a mention.
    f"@{POST} dances",
    # A generation id is not a post id.
    "gen_01abc make it rain",
]


@pytest.mark.parametrize("prompt", NO_REMIX)
def test_prompt_without_a_post_id_is_untouched(prompt):
    assert find_remix_target(prompt) == (prompt, None)


@pytest.mark.parametrize(
    "explicit",
    [
        "s_" + "0123456789ABCDEF" * 2,
        POST[:-1],
        POST + "a",
        f"{POST} extra",
        f"remix {POST}",
        "gen_01abc",
        "video_" + "ab" * 16,
        "https://sora.chatgpt.com/p/",
        f"https://sora.chatgpt.com/p/{POST}extra",
        "not an id",
        12,
    ],
)
def test_invalid_explicit_remix_target(explicit):
    with pytest.raises(InvalidParam) as info:
        find_remix_target(f"{POST} make it night", explicit)
    assert info.value.param == "remix_target_id"
    assert info.value.code == "invalid_value"
    assert "s_" in info.value.message


# ---------------------------------------------------------------------------------------
# Generation ids (upstream section 7.6)

GENERATION = [
    ("gen_01k9abcXYZ make it rain", "make it rain", "gen_01k9abcXYZ"),
    ("make it rain gen_01abc", "make it rain", "gen_01abc"),
    ("extend gen_01abc with rain", "extend with rain", "gen_01abc"),
    ("gen_01abc", "", "gen_01abc"),
    ("gen_a: more rain", ": more rain", "gen_a"),
    ("gen_01abc then gen_02def", "then", "gen_01abc"),
    ("https://sora.chatgpt.com/d/gen_01abc?x=1 more rain", "more rain", "gen_01abc"),
    ("gen_01abc\n  [5s] rain", "[5s] rain", "gen_01abc"),
    ("@alice gen_01abc dances with @gen_fan", "@alice dances with @gen_fan", "gen_01abc"),
]


@pytest.mark.parametrize(("prompt", "cleaned", "generation_id"), GENERATION)
def test_find_generation_id(prompt, cleaned, generation_id):
    assert find_generation_id(prompt) == (cleaned, generation_id)


@pytest.mark.parametrize(
    "prompt",
    [
        "make it rain",
        "",
        "gen_ alone",
        "regen_01abc is not an id",
        "my_gen_01abc",
        "gen_01abc_def",
        "@gen_01abc is a user",
        f"remix {POST}",
        "  keeps   its   spacing  ",
    ],
)
def test_prompt_without_a_generation_id_is_untouched(prompt):
    assert find_generation_id(prompt) == (prompt, None)


# ---------------------------------------------------------------------------------------
# Storyboards (upstream section 7.4)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("[5.0s] a cat", True),
        ("[5s] a cat", True),
        ("intro [10.25s] a cat", True),
        ("a cat [5s]", True),
        ("a cat", False),
        ("", False),
        ("[5] a cat", False),
        ("[5 s] a cat", False),
        ("[5S] a cat", False),
        ("[.5s] a cat", False),
        ("[5.s] a cat", False),
        ("[s] a cat", False),
        ("a cat {anime}", False),
        ("@alice [dancing]", False),
    ],
)
def test_is_storyboard(prompt, expected):
    assert is_storyboard(prompt) is expected


STORYBOARDS = [
    (
        "[5.0s] a cat walks in [5.0s] the cat looks up",
        "Shot 1:\nduration: 5.0sec\nScene: a cat walks in\n\n"
        "Shot 2:\nduration: 5.0sec\nScene: the cat looks up",
    ),
    (
        "[5s] a cat walks in\n[10s] the cat looks up",
        "Shot 1:\nduration: 5sec\nScene: a cat walks in\n\nShot 2:\nduration: 10sec\nScene: the cat looks up",
    ),
    (
        "A rainy city at night. [2.5s] a cat walks in [7.5s] the cat looks up",
        "current timeline:\n"
        "Shot 1:\nduration: 2.5sec\nScene: a cat walks in\n\n"
        "Shot 2:\nduration: 7.5sec\nScene: the cat looks up\n\n"
        "instructions:\nA rainy city at night.",
    ),
    (
        "Keep it moody.\n\n[10s]   one long shot  ",
        "current timeline:\nShot 1:\nduration: 10sec\nScene: one long shot\n\ninstructions:\nKeep it moody.",
    ),
    # Mentions pass through, in scenes and in instructions.
    (
        "@alice stars. [5s] @alice waves [5s] @bob.smith waves back",
        "current timeline:\n"
        "Shot 1:\nduration: 5sec\nScene: @alice waves\n\n"
        "Shot 2:\nduration: 5sec\nScene: @bob.smith waves back\n\n"
        "instructions:\n@alice stars.",
    ),
    # A scene keeps its inner line breaks; a mark without a scene makes no shot.
    (
        "[5s] a cat\nwalks in [5s] [5s] it sits",
        "Shot 1:\nduration: 5sec\nScene: a cat\nwalks in\n\nShot 2:\nduration: 5sec\nScene: it sits",
    ),
]


@pytest.mark.parametrize(("prompt", "rewritten"), STORYBOARDS)
def test_rewrite_storyboard(prompt, rewritten):
    assert is_storyboard(prompt)
    assert rewrite_storyboard(prompt) == rewritten


@pytest.mark.parametrize("prompt", ["a cat", "", "[5s]", "[5s]   ", "[5 s] a cat", "intro [5s]"])
def test_a_prompt_without_shots_is_not_rewritten(prompt):
    assert rewrite_storyboard(prompt) == prompt


def test_storyboard_survives_the_other_extractions():
    prompt = f"@alice stars {{anime}} {LINK}\n[5.0s] a cat\n[5.0s] a dog"
    prompt, style = extract_style(prompt)
    prompt, target = find_remix_target(prompt)
    assert (style, target) == ("anime", POST)
    assert rewrite_storyboard(prompt) == (
        "current timeline:\n"
        "Shot 1:\nduration: 5.0sec\nScene: a cat\n\n"
        "Shot 2:\nduration: 5.0sec\nScene: a dog\n\n"
        "instructions:\n@alice stars"
    )
