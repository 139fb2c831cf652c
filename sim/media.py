"""Media files and the signed-looking URLs that point at them.

Every task serves the same tiny committed clip with an MP4 ``free`` box appended that names the task and
the variant: players skip ``free`` boxes, so the file stays playable while each task's bytes (and the clean
vs watermarked variants) get distinct hashes that tests can check downloads against. Image results are PNGs
built here at the generation's real size, with a ``tEXt`` chunk naming the task and variant for the same
reason.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import quote

from sim.tokens import sign

ASSETS = Path(__file__).parent / "assets"
CLEAN = "00000"
WATERMARKED = "00000_wm"
# Which committed asset and content type each file name under /media/videos/{task}/... maps to.
VIDEO_FILES = {"src.mp4", "md.mp4", "unfurl.mp4"}
STILL_FILES = {
    "thumbnail.webp": ("thumbnail.webp", "image/webp"),
    "preview.gif": ("preview.gif", "image/gif"),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_FILL = (0x33, 0x66, 0xCC)
# Signed URLs stay valid this long on the sim clock (not enforced; only shown in ``se``).
URL_TTL_S = 7 * 86400


@cache
def asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def _free_box(payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + b"free" + payload


def video_bytes(task_id: str, variant: str, name: str = "src.mp4") -> bytes:
    base = asset("src_wm.mp4" if variant == WATERMARKED else "src.mp4")
    tag = f"sora-sim task={task_id} variant={variant} file={name}".encode()
    return base + _free_box(tag)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def _png_head(width: int, height: int) -> bytes:
    # A solid 8-bit RGB image compresses to about 1 kB at every allowed size, so serving it stays cheap.
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(IMAGE_FILL) * width
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(row * height, 9))


def image_bytes(task_id: str, index: int, width: int, height: int) -> bytes:
    tag = b"sora-sim\x00" + f"task={task_id} index={index}".encode()
    return _png_head(width, height) + _png_chunk(b"tEXt", tag) + _png_chunk(b"IEND", b"")


def sniff_image(data: bytes) -> str | None:
    """The image content type the bytes really are (PNG, JPEG or WebP), whatever the client declared."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_mp4(data: bytes) -> bool:
    """An ISO media file starts with a box whose type, at byte 4, is ``ftyp``."""
    return len(data) >= 8 and data[4:8] == b"ftyp"


def avatar_bytes() -> bytes:
    """The cameo avatar behind ``profile_asset_url``: the committed 32x32 WebP."""
    return asset("thumbnail.webp")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signed_url(public_url: str, path: str, now: float) -> str:
    expiry = datetime.fromtimestamp(now + URL_TTL_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = sign(f"{path}|{expiry}")
    query = f"se={quote(expiry, safe='')}&sp=r&sv=2024-08-04&sr=b&skoid=sora-sim&sig={quote(sig, safe='')}"
    return f"{public_url}{path}?{query}"


def task_paths(task_id: str) -> dict[str, str]:
    root = f"/media/videos/{task_id}"
    return {
        "source": f"{root}/{CLEAN}/src.mp4",
        "source_wm": f"{root}/{WATERMARKED}/src.mp4",
        "md": f"{root}/{WATERMARKED}/md.mp4",
        "gif": f"{root}/preview.gif",
        "thumbnail": f"{root}/thumbnail.webp",
        "unfurl": f"{root}/{WATERMARKED}/unfurl.mp4",
    }


def image_path(task_id: str, index: int) -> str:
    return f"/media/images/{task_id}/{index}.png"


def upload_path(upload_id: str) -> str:
    return f"/media/uploads/{upload_id}"


def cameo_path(cameo_id: str) -> str:
    return f"/media/cameos/{cameo_id}/profile.webp"
