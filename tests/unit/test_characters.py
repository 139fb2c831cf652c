"""The pure rules of character creation: timestamps, usernames, mentions, inputs, cameo states."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from shared.characters import (
    derive_username,
    instruction_value,
    mention_prompt,
    normalize_username,
    parse_timestamps,
    timestamps_list,
    timestamps_text,
)
from shared.errors import InvalidParam
from shared.inputs import decode_inline_video, is_mp4, video_from_bytes
from worker.engine.characters import cameo_outcome

MP4 = (Path(__file__).resolve().parents[2] / "sim" / "assets" / "src.mp4").read_bytes()


@pytest.mark.parametrize(
    ("value", "span"),
    [
        (None, (0, 3)),
        ("", (0, 3)),
        ("0,3", (0, 3)),
        (" 2 , 4 ", (2, 4)),
        ("1.5,3", (1.5, 3)),
        ("0,1", (0, 1)),
        ([0, 2], (0, 2)),
        (["5", "7.5"], (5, 7.5)),
    ],
)
def test_timestamps_read_a_span_of_one_to_three_seconds(value, span) -> None:
    assert parse_timestamps(value) == span


@pytest.mark.parametrize(
    "value", ["0,5", "3,1", "2,2", "0,0.5", "0", "0,1,2", "a,b", "-1,1", [True, 2], {"start": 0}, "0;3"]
)
def test_bad_timestamps_are_invalid_value_naming_the_field(value) -> None:
    with pytest.raises(InvalidParam) as caught:
        parse_timestamps(value, param="character_timestamps")
    assert (caught.value.code, caught.value.param) == ("invalid_value", "character_timestamps")


def test_timestamps_go_upstream_as_text_for_uploads_and_as_a_list_for_drafts() -> None:
    assert timestamps_text((0.0, 3.0)) == "0,3"
    assert timestamps_text([1.5, 3]) == "1.5,3"
    assert timestamps_list((0.0, 3.0)) == [0, 3]
    assert all(isinstance(n, int) for n in timestamps_list((0.0, 3.0)))


def test_derived_username_is_the_hint_after_its_last_dot_plus_three_digits() -> None:
    assert derive_username("owner.Jane", random.Random(1)) == f"jane{random.Random(1).randint(0, 999):03d}"
    for hint, base in [
        ("a.b.Foxy", "foxy"),
        ("single", "single"),
        ("x.Mr-Bean!", "mrbean"),
        (None, "character"),
    ]:
        name = derive_username(hint)
        assert name[:-3] == base and name[-3:].isdigit() and name == name.lower()
    assert derive_username("x.", random.Random(0)).startswith("character")
    assert len({derive_username("o.cat", random.Random(seed)) for seed in range(50)}) > 10


def test_requested_usernames_are_lower_case_without_the_at() -> None:
    assert normalize_username("@My_Cat") == "my_cat"
    assert normalize_username("  ") is None and normalize_username(None) is None
    for bad in ("ab", "has space", "emoji🙂", "x" * 31):
        with pytest.raises(InvalidParam):
            normalize_username(bad)


def test_mention_goes_first_once() -> None:
    assert mention_prompt("cat123", "walks in the park") == "@cat123 walks in the park"
    assert mention_prompt("cat123", "then @cat123 jumps") == "then @cat123 jumps"
    assert mention_prompt("cat", "@cat123 naps") == "@cat @cat123 naps"


def test_instruction_sets_are_wrapped_or_null() -> None:
    assert instruction_value("be kind") == {"value": [{"type": "text", "value": "be kind"}]}
    assert instruction_value(None) is None and instruction_value("") is None


def test_character_videos_must_be_mp4_and_within_the_cap() -> None:
    assert is_mp4(MP4) and not is_mp4(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    assert video_from_bytes(MP4, param="video").data == MP4
    data_url = "data:video/mp4;base64," + base64.b64encode(MP4).decode()
    assert decode_inline_video(data_url, param="video").data == MP4
    assert decode_inline_video(base64.urlsafe_b64encode(MP4).decode().rstrip("="), param="video").data == MP4
    for value, message in [("bm90IGEgdmlkZW8=", "not an MP4"), ("%%%", "not valid base64")]:
        with pytest.raises(InvalidParam, match=message) as caught:
            decode_inline_video(value, param="video")
        assert caught.value.code == "invalid_video"
    with pytest.raises(InvalidParam, match="larger than 1000 bytes"):
        video_from_bytes(MP4, param="video", max_bytes=1000)


@pytest.mark.parametrize(
    ("cameo", "outcome"),
    [
        ({"status": "processing", "status_message": "Processing"}, "processing"),
        ({}, "processing"),
        ({"status": "processing", "status_message": "Completed"}, "done"),
        ({"status": "finalized"}, "done"),
        ({"status": "failed", "status_message": "no person found"}, "failed"),
        ({"status": "error"}, "failed"),
    ],
)
def test_cameo_states(cameo, outcome) -> None:
    assert cameo_outcome(cameo) == outcome
