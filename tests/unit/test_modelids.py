from __future__ import annotations

import msgspec
import pytest

from shared.errors import InvalidParam, UnknownModel
from shared.modelids import (
    ImageParams,
    ModelSpec,
    VideoParams,
    list_models,
    parse_model,
    resolve_image_params,
    resolve_video_params,
)

# id, kind, pro, hd, orientation, seconds
VALID = [
    # Bases (contract section 6).
    ("sora-2", "video", False, False, None, None),
    ("sora-2-pro", "video", True, False, None, None),
    ("sora-video", "video", False, False, None, None),
    ("sora2", "video", False, False, None, None),
    ("sora2pro", "video", True, False, None, None),
    ("sora_video2", "video", False, False, None, None),
    ("sora-image", "image", False, False, None, None),
    ("gpt-image", "image", False, False, None, None),
    ("sora_image", "image", False, False, None, None),
    # Original gateway (upstream section 7.1).
    ("gpt-image-landscape", "image", False, False, "landscape", None),
    ("gpt-image-portrait", "image", False, False, "portrait", None),
    ("sora2-landscape-10s", "video", False, False, "landscape", 10),
    ("sora2-portrait-10s", "video", False, False, "portrait", 10),
    ("sora2-landscape-15s", "video", False, False, "landscape", 15),
    ("sora2-portrait-15s", "video", False, False, "portrait", 15),
    ("sora2-landscape-25s", "video", False, False, "landscape", 25),
    ("sora2-portrait-25s", "video", False, False, "portrait", 25),
    ("sora2pro-landscape-10s", "video", True, False, "landscape", 10),
    ("sora2pro-portrait-15s", "video", True, False, "portrait", 15),
    ("sora2pro-landscape-25s", "video", True, False, "landscape", 25),
    ("sora2pro-portrait-25s", "video", True, False, "portrait", 25),
    ("sora2pro-hd-landscape-10s", "video", True, True, "landscape", 10),
    ("sora2pro-hd-portrait-10s", "video", True, True, "portrait", 10),
    ("sora2pro-hd-landscape-15s", "video", True, True, "landscape", 15),
    ("sora2pro-hd-portrait-15s", "video", True, True, "portrait", 15),
    # Fork (upstream section 7.2).
    ("sora-image-landscape", "image", False, False, "landscape", None),
    ("sora-image-portrait", "image", False, False, "portrait", None),
    ("sora-video-10s", "video", False, False, None, 10),
    ("sora-video-15s", "video", False, False, None, 15),
    ("sora-video-25s", "video", False, False, None, 25),
    ("sora-video-landscape-10s", "video", False, False, "landscape", 10),
    ("sora-video-landscape-15s", "video", False, False, "landscape", 15),
    ("sora-video-landscape-25s", "video", False, False, "landscape", 25),
    ("sora-video-portrait-10s", "video", False, False, "portrait", 10),
    ("sora-video-portrait-15s", "video", False, False, "portrait", 15),
    ("sora-video-portrait-25s", "video", False, False, "portrait", 25),
    # Parts in any order.
    ("sora2pro-landscape-hd-10s", "video", True, True, "landscape", 10),
    ("sora2pro-10s-landscape-hd", "video", True, True, "landscape", 10),
    ("sora2-15s-portrait", "video", False, False, "portrait", 15),
    ("sora-2-15s-pro-landscape", "video", True, False, "landscape", 15),
    ("sora-video-pro-25s", "video", True, False, None, 25),
    # Underscores as separators, and the sora_video2 parameters of seed 004.
    ("sora_video2-portrait-15s", "video", False, False, "portrait", 15),
    ("sora_video2-landscape-hd", "video", True, True, "landscape", None),
    ("sora_video2-pro", "video", True, False, None, None),
    ("sora_video2_landscape_10s_hd_pro", "video", True, True, "landscape", 10),
    ("sora_image_portrait", "image", False, False, "portrait", None),
    ("sora_video", "video", False, False, None, None),
    ("sora2pro_hd_portrait_15s", "video", True, True, "portrait", 15),
    # hd implies pro, on any base.
    ("sora2-hd-portrait", "video", True, True, "portrait", None),
    ("sora-2-hd", "video", True, True, None, None),
    # A pro part on a pro base is redundant, not contradictory.
    ("sora2pro-pro", "video", True, False, None, None),
    # Case and surrounding spaces.
    ("SORA-2", "video", False, False, None, None),
    ("  Sora-Video-Landscape-10S  ", "video", False, False, "landscape", 10),
    ("GPT-IMAGE-Landscape", "image", False, False, "landscape", None),
]


@pytest.mark.parametrize(("model_id", "kind", "pro", "hd", "orientation", "seconds"), VALID)
def test_parse_model_reads_every_naming(model_id, kind, pro, hd, orientation, seconds):
    spec = parse_model(model_id)
    assert (spec.kind, spec.pro, spec.hd, spec.orientation, spec.seconds) == (
        kind,
        pro,
        hd,
        orientation,
        seconds,
    )


def test_parse_model_keeps_the_id_as_written_without_surrounding_spaces():
    assert parse_model("  Sora-2-Pro ").id == "Sora-2-Pro"
    assert parse_model("sora_video2-landscape").id == "sora_video2-landscape"


def test_model_spec_is_frozen():
    spec = parse_model("sora-2")
    with pytest.raises(AttributeError):
        spec.pro = True  # type: ignore[misc]


REJECTED = [
    "",
    "   ",
    "gpt-4o",
    "dall-e-3",
    "sora",
    "sora-3",
    "sora-2-720p",
    "avatar-create-10s",
    "prompt-enhance-short-10s",
    "prompt-enhance-long-20s",
    "sora-video-5s",
    "sora-video-20s",
    "sora-video-0s",
    "sora-video-storyboard",
    "sora-2-",
    "-sora-2",
    "sora--2",
    "sora-2 landscape",
    # Images take an orientation only.
    "sora-image-10s",
    "sora-image-hd",
    "sora-image-pro",
    "gpt-image-landscape-15s",
    # Duplicates and contradictions.
    "sora2-landscape-portrait",
    "sora-image-landscape-portrait",
    "sora2-portrait-portrait",
    "sora2-10s-15s",
    "sora2-15s-15s",
    "sora2-hd-hd",
    "sora-2-pro-pro-pro",
    # Upstream offers HD at 10 and 15 s only.
    "sora2pro-hd-landscape-25s",
    "sora-2-25s-hd",
]


@pytest.mark.parametrize("model_id", REJECTED)
def test_parse_model_rejects_unknown_ids(model_id):
    with pytest.raises(UnknownModel) as info:
        parse_model(model_id)
    err = info.value
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert err.status_code == 400
    assert "GET /v1/models" in err.message
    if model_id.strip():
        assert model_id.strip() in err.message


def test_parse_model_rejects_non_strings():
    with pytest.raises(UnknownModel):
        parse_model(None)  # type: ignore[arg-type]


def test_list_models_is_unique_and_every_id_parses():
    models = list_models()
    assert len(models) == len(set(models))
    for model_id in models:
        assert parse_model(model_id).id == model_id


def test_list_models_covers_the_bases_and_common_combinations():
    models = set(list_models())
    expected = {
        "sora-2",
        "sora-2-pro",
        "sora-video",
        "sora2",
        "sora2pro",
        "sora_video2",
        "sora-image",
        "sora-image-landscape",
        "sora-image-portrait",
        "gpt-image",
        "gpt-image-landscape",
        "gpt-image-portrait",
        "sora-video-10s",
        "sora-video-landscape-10s",
        "sora-video-portrait-15s",
        "sora2-landscape-25s",
        "sora2pro-portrait-25s",
        "sora2pro-hd-portrait-15s",
        "sora2pro-hd-landscape-10s",
    }
    assert expected <= models
    assert not any("enhance" in m for m in models)
    assert {m for m in models if "extension" in m} == {"sora2-extension-10s", "sora2-extension-15s"}
    assert {m for m in models if parse_model(m).kind == "character"} == {"avatar-create"}


def test_list_models_returns_a_fresh_list():
    first = list_models()
    first.clear()
    assert list_models()


# ---------------------------------------------------------------------------------------
# resolve_video_params


def _resolve(model: str, **fields) -> VideoParams:
    return resolve_video_params(parse_model(model), **fields)


def test_defaults_are_portrait_ten_seconds_standard():
    assert _resolve("sora-2") == VideoParams(
        orientation="portrait",
        seconds=10,
        n_frames=300,
        size="720x1280",
        upstream_size="small",
        upstream_model="sy_8",
        requires_pro=False,
    )


# model, orientation, seconds, n_frames, size, upstream_size, upstream_model, requires_pro
FROM_MODEL = [
    ("sora-video-landscape-10s", "landscape", 10, 300, "1280x720", "small", "sy_8", False),
    ("sora-video-portrait-15s", "portrait", 15, 450, "720x1280", "small", "sy_8", False),
    ("sora2-landscape-25s", "landscape", 25, 750, "1280x720", "small", "sy_8", True),
    ("sora-video-15s", "portrait", 15, 450, "720x1280", "small", "sy_8", False),
    ("sora-2-pro", "portrait", 10, 300, "720x1280", "small", "sy_ore", True),
    ("sora2pro-landscape-15s", "landscape", 15, 450, "1280x720", "small", "sy_ore", True),
    ("sora2pro-portrait-25s", "portrait", 25, 750, "720x1280", "small", "sy_ore", True),
    ("sora2pro-hd-landscape-10s", "landscape", 10, 300, "1792x1024", "large", "sy_ore", True),
    ("sora2pro-hd-portrait-15s", "portrait", 15, 450, "1024x1792", "large", "sy_ore", True),
    ("sora2-hd-portrait", "portrait", 10, 300, "1024x1792", "large", "sy_ore", True),
    ("sora_video2-landscape", "landscape", 10, 300, "1280x720", "small", "sy_8", False),
]


@pytest.mark.parametrize(
    (
        "model",
        "orientation",
        "seconds",
        "n_frames",
        "size",
        "upstream_size",
        "upstream_model",
        "requires_pro",
    ),
    FROM_MODEL,
)
def test_model_parts_fill_the_parameters(
    model, orientation, seconds, n_frames, size, upstream_size, upstream_model, requires_pro
):
    params = _resolve(model)
    assert msgspec.structs.asdict(params) == {
        "orientation": orientation,
        "seconds": seconds,
        "n_frames": n_frames,
        "size": size,
        "upstream_size": upstream_size,
        "upstream_model": upstream_model,
        "requires_pro": requires_pro,
    }


@pytest.mark.parametrize(
    ("value", "seconds", "n_frames"),
    [
        (4, 10, 300),
        (8, 10, 300),
        (10, 10, 300),
        (12, 15, 450),
        (15, 15, 450),
        (25, 25, 750),
        ("4", 10, 300),
        ("8", 10, 300),
        (" 15 ", 15, 450),
        ("12", 15, 450),
        ("25", 25, 750),
        ("10s", 10, 300),
        ("15S", 15, 450),
        (10.0, 10, 300),
        ("10.0", 10, 300),
    ],
)
def test_seconds_map_to_real_durations(value, seconds, n_frames):
    params = _resolve("sora-2", seconds=value)
    assert (params.seconds, params.n_frames) == (seconds, n_frames)


@pytest.mark.parametrize("value", [0, 1, 5, 11, 20, 30, -10, 10.5, "abc", "1.5", "ten", "10 seconds", True])
def test_other_seconds_are_invalid(value):
    with pytest.raises(InvalidParam) as info:
        _resolve("sora-2", seconds=value)
    assert info.value.param == "seconds"
    assert info.value.code == "invalid_value"
    assert "10, 15 or 25" in info.value.message


def test_explicit_seconds_beat_the_model_suffix():
    assert _resolve("sora-video-15s", seconds=10).seconds == 10
    assert _resolve("sora-video-10s", seconds="25").seconds == 25


def test_blank_fields_count_as_not_given():
    params = _resolve("sora-video-landscape-15s", seconds="", size="  ", orientation="")
    assert (params.orientation, params.seconds) == ("landscape", 15)


@pytest.mark.parametrize(
    ("size", "orientation", "out_size"),
    [
        ("720x1280", "portrait", "720x1280"),
        ("1280x720", "landscape", "1280x720"),
        ("1280X720", "landscape", "1280x720"),
        (" 1280 x 720 ", "landscape", "1280x720"),
        ("1920x1080", "landscape", "1280x720"),
        ("1080x1920", "portrait", "720x1280"),
        ("480x854", "portrait", "720x1280"),
    ],
)
def test_standard_sizes_are_read_by_shape(size, orientation, out_size):
    params = _resolve("sora-2", size=size)
    assert (params.orientation, params.size, params.upstream_size) == (orientation, out_size, "small")
    assert not params.requires_pro


@pytest.mark.parametrize(
    ("size", "orientation"),
    [("1024x1792", "portrait"), ("1792x1024", "landscape")],
)
def test_hd_sizes_need_and_use_a_pro_model(size, orientation):
    params = _resolve("sora-2-pro", size=size)
    assert (params.orientation, params.size, params.upstream_size, params.upstream_model) == (
        orientation,
        size,
        "large",
        "sy_ore",
    )
    assert params.requires_pro


@pytest.mark.parametrize("model", ["sora-2", "sora-video-landscape-10s", "sora2", "sora_video2"])
@pytest.mark.parametrize("size", ["1024x1792", "1792x1024"])
def test_hd_size_on_a_standard_model_is_invalid(model, size):
    with pytest.raises(InvalidParam) as info:
        _resolve(model, size=size)
    assert info.value.param == "size"
    assert "sora-2-pro" in info.value.message


@pytest.mark.parametrize(
    "size", ["abc", "1280", "1280x", "x720", "0x720", "1280x0", "-1280x720", "1280x720x3", "16:9"]
)
def test_unreadable_sizes_are_invalid(size):
    with pytest.raises(InvalidParam) as info:
        _resolve("sora-2", size=size)
    assert info.value.param == "size"


def test_a_square_size_leaves_orientation_to_the_field_then_the_model():
    assert _resolve("sora-2", size="1024x1024").orientation == "portrait"
    assert _resolve("sora-2", size="1024x1024", orientation="landscape").orientation == "landscape"
    assert _resolve("sora-video-landscape-10s", size="1024x1024").size == "1280x720"


@pytest.mark.parametrize(("value", "orientation"), [("landscape", "landscape"), (" PORTRAIT ", "portrait")])
def test_orientation_field(value, orientation):
    assert _resolve("sora-2", orientation=value).orientation == orientation


@pytest.mark.parametrize("value", ["square", "wide", "16:9", "horizontal"])
def test_unknown_orientation_is_invalid(value):
    with pytest.raises(InvalidParam) as info:
        _resolve("sora-2", orientation=value)
    assert info.value.param == "orientation"


def test_precedence_size_then_orientation_then_suffix_then_default():
    # The size disagrees with the orientation field: size wins.
    assert (
        _resolve("sora-video-portrait-10s", size="1280x720", orientation="portrait").orientation
        == "landscape"
    )
    # The orientation field beats the suffix.
    assert _resolve("sora-video-portrait-10s", orientation="landscape").orientation == "landscape"
    # The suffix beats the default.
    assert _resolve("sora-video-landscape-10s").orientation == "landscape"
    assert _resolve("sora-video-10s").orientation == "portrait"


def test_hd_model_stays_hd_and_takes_orientation_from_a_standard_size():
    params = _resolve("sora2pro-hd-landscape-10s", size="720x1280")
    assert (params.orientation, params.size, params.upstream_size) == ("portrait", "1024x1792", "large")


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("sora2pro-hd-landscape", {"seconds": 25}, "seconds"),
        ("sora2pro-hd-portrait-10s", {"seconds": "25"}, "seconds"),
        ("sora-2-pro", {"size": "1792x1024", "seconds": 25}, "seconds"),
        ("sora2pro-landscape-25s", {"size": "1792x1024"}, "size"),
    ],
)
def test_hd_at_25_seconds_is_invalid(model, fields, param):
    with pytest.raises(InvalidParam) as info:
        _resolve(model, **fields)
    assert info.value.param == param
    assert "10 or 15" in info.value.message


@pytest.mark.parametrize(
    ("model", "fields", "requires_pro", "upstream_model"),
    [
        ("sora-2", {}, False, "sy_8"),
        ("sora-2", {"seconds": 15}, False, "sy_8"),
        ("sora-2", {"seconds": 25}, True, "sy_8"),
        ("sora-2-pro", {}, True, "sy_ore"),
        ("sora2pro", {"size": "1280x720"}, True, "sy_ore"),
        ("sora-video-pro-10s", {}, True, "sy_ore"),
        ("sora2-hd", {}, True, "sy_ore"),
    ],
)
def test_requires_pro_and_upstream_model(model, fields, requires_pro, upstream_model):
    params = _resolve(model, **fields)
    assert (params.requires_pro, params.upstream_model) == (requires_pro, upstream_model)


def test_image_models_have_no_video_parameters():
    with pytest.raises(InvalidParam) as info:
        resolve_video_params(parse_model("sora-image"))
    assert info.value.param == "model"


def test_resolve_accepts_a_hand_built_spec():
    spec = ModelSpec(id="x", kind="video", pro=False, hd=False, orientation="landscape", seconds=15)
    assert resolve_video_params(spec).size == "1280x720"


def test_a_hand_built_spec_is_not_an_extension():
    spec = ModelSpec(id="x", kind="video", pro=False, hd=False, orientation=None, seconds=None)
    assert spec.extension is False


# ---------------------------------------------------------------------------------------
# Extension models (upstream section 7.1)

EXTENSIONS = [
    ("sora2-extension-10s", 10),
    ("sora2-extension-15s", 15),
    # The other non-pro video bases take "extension" the same way.
    ("sora-2-extension-10s", 10),
    ("sora-2-extension-15s", 15),
    ("sora-video-extension-10s", 10),
    ("sora-video-extension-15s", 15),
    ("sora_video2-extension-15s", 15),
    ("sora2_extension_10s", 10),
    ("SORA2-Extension-15S", 15),
]


@pytest.mark.parametrize(("model_id", "seconds"), EXTENSIONS)
def test_extension_models_parse_with_their_duration(model_id, seconds):
    spec = parse_model(model_id)
    assert spec == ModelSpec(
        id=model_id,
        kind="video",
        pro=False,
        hd=False,
        orientation=None,
        seconds=seconds,
        extension=True,
    )


def test_normal_models_are_not_extensions():
    assert not any(parse_model(m).extension for m in list_models() if "extension" not in m)


EXTENSION_REJECTED = [
    # The duration is required and is 10 or 15.
    ("sora2-extension", "need a duration"),
    ("sora-2-extension", "need a duration"),
    ("sora2-extension-25s", "not an available duration"),
    ("sora2-extension-5s", "not an available duration"),
    ("sora2-extension-10s-15s", "repeats or contradicts"),
    # No orientation, hd or pro: the extension call has nothing to put them in.
    ("sora2-extension-landscape-10s", "not available for extension models"),
    ("sora2-extension-10s-portrait", "not available for extension models"),
    ("sora2-extension-hd-10s", "not available for extension models"),
    ("sora2-extension-pro-15s", "not available for extension models"),
    # "extension" is part of the base: it follows a non-pro video base directly.
    ("sora2-10s-extension", "unknown part 'extension'"),
    ("sora2pro-extension-10s", "unknown part 'extension'"),
    ("sora-2-pro-extension-10s", "unknown part 'extension'"),
    ("sora-image-extension-10s", "unknown part 'extension'"),
    ("sora2-extension-extension-10s", "unknown part 'extension'"),
    ("extension-10s", ""),
]


@pytest.mark.parametrize(("model_id", "why"), EXTENSION_REJECTED)
def test_extension_model_rejections(model_id, why):
    with pytest.raises(UnknownModel) as info:
        parse_model(model_id)
    assert info.value.param == "model"
    assert model_id in info.value.message
    assert why in info.value.message


@pytest.mark.parametrize("model_id", ["sora2-extension-10s", "sora-video-extension-15s"])
def test_extension_models_have_no_new_video_parameters(model_id):
    with pytest.raises(InvalidParam) as info:
        resolve_video_params(parse_model(model_id), seconds=10)
    assert info.value.param == "model"
    assert "continue an existing draft" in info.value.message


# ---------------------------------------------------------------------------------------
# resolve_image_params


# model, size, orientation, upstream width and height, reported size
IMAGE_PARAMS = [
    ("sora-image", "1024x1024", "square", 360, 360, "1024x1024"),
    ("sora-image", "1536x1024", "landscape", 540, 360, "1536x1024"),
    ("sora-image", "1024x1536", "portrait", 360, 540, "1024x1536"),
    ("gpt-image", None, "square", 360, 360, "1024x1024"),
    ("gpt-image-landscape", None, "landscape", 540, 360, "1536x1024"),
    ("gpt-image-portrait", None, "portrait", 360, 540, "1024x1536"),
]


@pytest.mark.parametrize(("model", "size", "orientation", "width", "height", "reported"), IMAGE_PARAMS)
def test_image_params_hold_upstream_pixels_and_the_reported_size(
    model, size, orientation, width, height, reported
):
    assert resolve_image_params(parse_model(model), size=size) == ImageParams(
        orientation=orientation, width=width, height=height, size=reported
    )


@pytest.mark.parametrize(
    ("model", "orientation"),
    [
        ("sora-image", "square"),
        ("gpt-image", "square"),
        ("sora_image", "square"),
        ("sora-image-landscape", "landscape"),
        ("gpt-image-landscape", "landscape"),
        ("sora-image-portrait", "portrait"),
        ("gpt-image-portrait", "portrait"),
        ("sora_image_portrait", "portrait"),
    ],
)
@pytest.mark.parametrize("size", [None, "", "  ", "auto", " AUTO "])
def test_without_a_size_the_model_suffix_decides_else_square(model, orientation, size):
    assert resolve_image_params(parse_model(model), size=size).orientation == orientation


@pytest.mark.parametrize(
    ("size", "orientation"),
    [
        # Any square.
        ("1024x1024", "square"),
        ("256x256", "square"),
        ("512X512", "square"),
        ("360x360", "square"),
        (" 1024 x 1024 ", "square"),
        ("1024\u00d71024", "square"),
        # Wider.
        ("1536x1024", "landscape"),
        ("1792x1024", "landscape"),
        ("1280x720", "landscape"),
        ("1025x1024", "landscape"),
        # Taller.
        ("1024x1536", "portrait"),
        ("1024x1792", "portrait"),
        ("720x1280", "portrait"),
        ("1x2", "portrait"),
    ],
)
@pytest.mark.parametrize("model", ["sora-image", "sora-image-landscape", "gpt-image-portrait"])
def test_an_explicit_size_wins_by_its_shape(model, size, orientation):
    params = resolve_image_params(parse_model(model), size=size)
    assert params.orientation == orientation
    reported = {"square": "1024x1024", "landscape": "1536x1024", "portrait": "1024x1536"}
    assert params.size == reported[orientation]


@pytest.mark.parametrize(
    "size", ["abc", "1024", "1024x", "x1024", "0x1024", "1024x0", "-1024x1024", "16:9", "square", "autox"]
)
def test_unreadable_image_sizes_are_invalid(size):
    with pytest.raises(InvalidParam) as info:
        resolve_image_params(parse_model("sora-image"), size=size)
    assert info.value.param == "size"
    assert "1024x1024" in info.value.message


@pytest.mark.parametrize("model", ["sora-2", "sora2pro-hd-landscape-10s", "sora2-extension-10s"])
def test_video_models_have_no_image_parameters(model):
    with pytest.raises(InvalidParam) as info:
        resolve_image_params(parse_model(model))
    assert info.value.param == "model"


def test_image_params_are_frozen():
    params = resolve_image_params(parse_model("sora-image"))
    with pytest.raises(AttributeError):
        params.size = "1x1"  # type: ignore[misc]
