"""Media files and the signed-looking URLs that point at them.

Every task serves the same tiny committed clip with an MP4 ``free`` box appended that names the task and
the variant: players skip ``free`` boxes, so the file stays playable while each task's bytes (and the clean
vs watermarked variants) get distinct hashes that tests can check downloads against.
"""

from __future__ import annotations

import hashlib
import struct
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
