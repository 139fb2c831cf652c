"""Model ids are parsed, not looked up: every naming in use by prior gateways works.

An id is a base (``sora-2``, ``sora2pro``, ``gpt-image``, ...) followed by optional
parts in any order (``landscape``/``portrait``, ``10s``/``15s``/``25s``, ``hd``, ``pro``),
separated by ``-`` or ``_``. Parsing says what the caller asked for; turning that plus
the request fields into upstream parameters is :func:`resolve_video_params` and
:func:`resolve_image_params`.

Extension models (upstream reference, section 7.1) continue an existing draft by 10 or
15 seconds: ``sora2-extension-10s`` and ``sora2-extension-15s``. ``extension`` belongs to
the base, so it comes straight after any non-pro video base (``sora-2-extension-15s``,
``sora-video-extension-10s`` and ``sora_video2-extension-10s`` work too), and the duration
is then required and is the only part allowed: the extension call takes no model,
orientation or size, so ``pro``, ``hd`` and an orientation would promise what it cannot do.
"""

from __future__ import annotations

import itertools
import re
from typing import Literal, cast

import msgspec

from shared.errors import InvalidParam, UnknownModel

Kind = Literal["video", "image", "character"]
Orientation = Literal["landscape", "portrait"]
ImageOrientation = Literal["square", "landscape", "portrait"]


class ModelSpec(msgspec.Struct, frozen=True):
    id: str
    kind: Kind
    pro: bool
    hd: bool
    orientation: Orientation | None
    seconds: int | None
    # Continues a draft (``gen_…`` in the prompt) by ``seconds``, which is then always 10 or 15.
    extension: bool = False


class VideoParams(msgspec.Struct, frozen=True):
    orientation: Orientation
    seconds: int
    n_frames: int
    size: str
    upstream_size: Literal["small", "large"]
    upstream_model: Literal["sy_8", "sy_ore"]
    requires_pro: bool


class ImageParams(msgspec.Struct, frozen=True):
    orientation: ImageOrientation
    # What the upstream is asked to draw.
    width: int
    height: int
    # What we answer with; see _IMAGE_SIZES.
    size: str


class _Base(msgspec.Struct, frozen=True):
    kind: Kind
    pro: bool
    # Which part slots this base takes; a new model family (extension, prompt
    # enhance) is one more entry here with its own slots and durations.
    slots: frozenset[str]
    durations: frozenset[int] = frozenset()
    extension: bool = False

    @property
    def family(self) -> str:
        return "extension" if self.extension else self.kind


_VIDEO_SLOTS = frozenset({"orientation", "seconds", "hd", "pro"})
_VIDEO_DURATIONS = frozenset({10, 15, 25})
_IMAGE_SLOTS = frozenset({"orientation"})
_EXTENSION = _Base("video", False, frozenset({"seconds"}), frozenset({10, 15}), extension=True)

# Keys are the base's tokens after normalisation (lower case, "_" read as "-").
_BASES: dict[tuple[str, ...], _Base] = {
    ("sora", "2"): _Base("video", False, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora", "2", "pro"): _Base("video", True, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora", "video"): _Base("video", False, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora2",): _Base("video", False, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora2pro",): _Base("video", True, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora", "video2"): _Base("video", False, _VIDEO_SLOTS, _VIDEO_DURATIONS),
    ("sora", "image"): _Base("image", False, _IMAGE_SLOTS),
    ("gpt", "image"): _Base("image", False, _IMAGE_SLOTS),
    ("sora2", "extension"): _EXTENSION,
    ("sora", "2", "extension"): _EXTENSION,
    ("sora", "video", "extension"): _EXTENSION,
    ("sora", "video2", "extension"): _EXTENSION,
    # Makes a character (cameo) from a video, not a video (upstream reference, section 7.1).
    ("avatar", "create"): _Base("character", False, frozenset()),
}
_LONGEST_BASE = max(len(k) for k in _BASES)

_SECONDS_PART = re.compile(r"(\d+)s")
_PARTS: dict[str, tuple[str, object]] = {
    "landscape": ("orientation", "landscape"),
    "portrait": ("orientation", "portrait"),
    "hd": ("hd", True),
    "pro": ("pro", True),
}

# Upstream makes HD only at 10 and 15 s (upstream reference, section 7.1).
_HD_DURATIONS = frozenset({10, 15})
_FPS = 30

_STANDARD_SIZES: dict[Orientation, str] = {"portrait": "720x1280", "landscape": "1280x720"}
_HD_SIZES: dict[Orientation, str] = {"portrait": "1024x1792", "landscape": "1792x1024"}
_HD_SIZE_ORIENTATION: dict[str, Orientation] = {v: k for k, v in _HD_SIZES.items()}

# Clients ask for durations the upstream does not make; round up to the next real one.
_SECONDS_MAP = {4: 10, 8: 10, 10: 10, 12: 15, 15: 15, 25: 25}

# The upstream draws images 360 px on the short side, 3:2 when not square (upstream reference, section 4.1).
_IMAGE_UPSTREAM: dict[ImageOrientation, tuple[int, int]] = {
    "square": (360, 360),
    "landscape": (540, 360),
    "portrait": (360, 540),
}
# We report gpt-image-1's sizes: OpenAI clients know them, and they have the same shapes (1:1, 3:2, 2:3).
_IMAGE_SIZES: dict[ImageOrientation, str] = {
    "square": "1024x1024",
    "landscape": "1536x1024",
    "portrait": "1024x1536",
}

_SIZE_RE = re.compile(r"(\d{1,5})\s*[x\u00d7*]\s*(\d{1,5})")
_SECONDS_RE = re.compile(r"(\d+)(?:\.0*)?\s*s?")


def _unknown(model_id: str, why: str = "") -> UnknownModel:
    shown = model_id.strip() or "(empty)"
    detail = f" ({why})" if why else ""
    return UnknownModel(
        f"The model '{shown}' does not exist{detail}. Call GET /v1/models for the list of models.",
        param="model",
    )


def parse_model(model_id: str) -> ModelSpec:
    """Read a model id; raises UnknownModel (code ``model_not_found``) for anything else."""
    if not isinstance(model_id, str):
        raise _unknown(str(model_id))
    written = model_id.strip()
    tokens = written.lower().replace("_", "-").split("-")
    if not all(tokens):
        raise _unknown(model_id)

    for n in range(min(_LONGEST_BASE, len(tokens)), 0, -1):
        base = _BASES.get(tuple(tokens[:n]))
        if base is not None:
            break
    else:
        raise _unknown(model_id)

    slots: dict[str, object] = {}
    for token in tokens[n:]:
        slot, value = _read_part(token, model_id)
        if slot not in base.slots:
            raise _unknown(model_id, f"'{token}' is not available for {base.family} models")
        if slot in slots:
            raise _unknown(model_id, f"'{token}' repeats or contradicts another part")
        if slot == "seconds" and value not in base.durations:
            raise _unknown(model_id, f"'{token}' is not an available duration")
        slots[slot] = value

    hd = bool(slots.get("hd", False))
    seconds = cast("int | None", slots.get("seconds"))
    if base.extension and seconds is None:
        raise _unknown(model_id, "extension models need a duration, 10s or 15s")
    if hd and seconds is not None and seconds not in _HD_DURATIONS:
        raise _unknown(model_id, "HD is available at 10 or 15 seconds only")
    return ModelSpec(
        id=written,
        kind=base.kind,
        # HD only exists on the pro upstream model.
        pro=base.pro or bool(slots.get("pro", False)) or hd,
        hd=hd,
        orientation=cast("Orientation | None", slots.get("orientation")),
        seconds=seconds,
        extension=base.extension,
    )


def _read_part(token: str, model_id: str) -> tuple[str, object]:
    if token in _PARTS:
        return _PARTS[token]
    m = _SECONDS_PART.fullmatch(token)
    if m:
        return "seconds", int(m.group(1))
    raise _unknown(model_id, f"unknown part '{token}'")


def _build_model_list() -> tuple[str, ...]:
    ids: list[str] = ["sora-2", "sora-2-pro", "sora-video", "sora2", "sora2pro", "sora_video2"]
    orientations = ("landscape", "portrait")
    durations = ("10s", "15s", "25s")
    ids += [f"sora-2-{o}" for o in orientations]
    ids += [f"sora-2-pro-{o}" for o in orientations]
    ids += [f"sora-2-pro-hd-{o}" for o in orientations]
    ids += [f"sora-video-{d}" for d in durations]
    for family in ("sora-video", "sora2", "sora2pro"):
        ids += [f"{family}-{o}-{d}" for o, d in itertools.product(orientations, durations)]
    ids += [f"sora2pro-hd-{o}-{d}" for o, d in itertools.product(orientations, ("10s", "15s"))]
    ids += [f"sora_video2-{o}" for o in orientations]
    for image in ("sora-image", "gpt-image"):
        ids += [image, *(f"{image}-{o}" for o in orientations)]
    ids.append("sora_image")
    ids += ["sora2-extension-10s", "sora2-extension-15s"]
    ids.append("avatar-create")
    return tuple(dict.fromkeys(ids))


_MODEL_LIST = _build_model_list()


def list_models() -> list[str]:
    """The canonical ids GET /v1/models shows; every one of them parses."""
    return list(_MODEL_LIST)


def _present(value: int | str | None) -> int | str | None:
    """Clients send empty strings for fields they did not mean to set."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _parse_seconds(value: int | str) -> int:
    raw: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        raw = value
    elif isinstance(value, float) and value.is_integer():
        raw = int(value)
    elif isinstance(value, str):
        m = _SECONDS_RE.fullmatch(value.strip().lower())
        if m:
            raw = int(m.group(1))
    if raw not in _SECONDS_MAP:
        raise InvalidParam(
            f"seconds must be one of 10, 15 or 25 (4 and 8 are served as 10, 12 as 15); got {value!r}.",
            param="seconds",
        )
    return _SECONDS_MAP[raw]


def _read_size(value: object, examples: str) -> tuple[int, int]:
    text = value.strip().lower() if isinstance(value, str) else ""
    m = _SIZE_RE.fullmatch(text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise InvalidParam(f"size must look like WIDTHxHEIGHT, e.g. {examples}; got {value!r}.", param="size")
    return int(m.group(1)), int(m.group(2))


def _parse_size(value: str) -> tuple[Orientation | None, bool]:
    """(orientation, is_hd) of a ``WxH`` size; a square size has no orientation of its own."""
    width, height = _read_size(value, "720x1280 or 1280x720")
    canonical = f"{width}x{height}"
    if canonical in _HD_SIZE_ORIENTATION:
        return _HD_SIZE_ORIENTATION[canonical], True
    if width == height:
        return None, False
    return ("landscape" if width > height else "portrait"), False


def _parse_orientation(value: str) -> Orientation:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text == "landscape" or text == "portrait":
        return text
    raise InvalidParam(f"orientation must be 'landscape' or 'portrait'; got {value!r}.", param="orientation")


def resolve_video_params(
    spec: ModelSpec,
    *,
    seconds: int | str | None = None,
    size: str | None = None,
    orientation: str | None = None,
) -> VideoParams:
    """Upstream parameters for a video job: request fields win over model parts, parts over defaults.

    Any ``WxH`` size is accepted and read by its shape (wider is landscape, taller or
    square is portrait); only 1024x1792 and 1792x1024 ask for HD. A square size leaves
    the orientation to the ``orientation`` field or the model.
    """
    if spec.kind != "video":
        raise InvalidParam(f"The model '{spec.id}' does not make videos.", param="model")
    if spec.extension:
        # Its duration is spec.seconds and it has no size or orientation of its own; falling through would
        # quietly make a new video instead.
        raise InvalidParam(
            f"The model '{spec.id}' is an extension model: extension models continue an existing draft "
            "(put its gen_... id in the prompt) by the 10 or 15 seconds their name says, "
            "so they do not make a new video.",
            param="model",
        )

    size_text, orientation_text, seconds_value = _present(size), _present(orientation), _present(seconds)
    size_orientation: Orientation | None = None
    size_hd = False
    if size_text is not None:
        size_orientation, size_hd = _parse_size(str(size_text))
    field_orientation = _parse_orientation(str(orientation_text)) if orientation_text is not None else None
    chosen_orientation: Orientation = size_orientation or field_orientation or spec.orientation or "portrait"
    duration = _parse_seconds(seconds_value) if seconds_value is not None else (spec.seconds or 10)

    if size_hd and not spec.pro:
        raise InvalidParam(
            f"size {size_text} is HD and needs a pro model: use sora-2-pro, "
            "or 720x1280 / 1280x720 with this model.",
            param="size",
        )
    hd = spec.hd or size_hd
    if hd and duration not in _HD_DURATIONS:
        raise InvalidParam(
            f"HD videos are available at 10 or 15 seconds only, not {duration}.",
            param="seconds" if seconds_value is not None else "size",
        )

    return VideoParams(
        orientation=chosen_orientation,
        seconds=duration,
        n_frames=duration * _FPS,
        size=(_HD_SIZES if hd else _STANDARD_SIZES)[chosen_orientation],
        upstream_size="large" if hd else "small",
        upstream_model="sy_ore" if spec.pro else "sy_8",
        requires_pro=spec.pro or hd or duration == 25,
    )


def resolve_image_params(spec: ModelSpec, *, size: str | None = None) -> ImageParams:
    """Upstream parameters for an image: an explicit ``size`` wins, then the model's orientation, then square.

    Any ``WxH`` is read by its shape (square, wider is landscape, taller is portrait), so DALL-E
    and gpt-image sizes all work; ``auto`` counts as not given.
    """
    if spec.kind != "image":
        raise InvalidParam(f"The model '{spec.id}' does not make images.", param="model")
    text = _present(size)
    orientation: ImageOrientation
    if text is None or (isinstance(text, str) and text.lower() == "auto"):
        orientation = spec.orientation or "square"
    else:
        width, height = _read_size(text, "1024x1024, 1536x1024 or 1024x1536 (or auto)")
        orientation = "square" if width == height else "landscape" if width > height else "portrait"
    upstream_width, upstream_height = _IMAGE_UPSTREAM[orientation]
    return ImageParams(
        orientation=orientation, width=upstream_width, height=upstream_height, size=_IMAGE_SIZES[orientation]
    )
