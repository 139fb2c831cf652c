"""The simulator's image tasks (``/video_gen``, ``/v2/recent_tasks``) and uploads, with a manual clock."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from sim import SimConfig
from tests.unit.test_sim import Sim, _error, make_client

# At scale 1: queued 2 s, running 8 s.
IMAGE_DONE_AFTER = 10.0
IMAGE = {
    "type": "image_gen",
    "operation": "simple_compose",
    "prompt": "a red fox in snow",
    "width": 360,
    "height": 360,
    "n_variants": 1,
    "n_frames": 1,
    "inpaint_items": [],
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24


class ImageSim(Sim):
    def image(self, at: str, sentinel: str | None = "opaque-sentinel", **overrides: Any) -> Any:
        headers = {"Authorization": f"Bearer {at}"}
        if sentinel is not None:
            headers["openai-sentinel-token"] = sentinel
        return self.c.post("/backend/video_gen", json={**IMAGE, **overrides}, headers=headers)

    def image_id(self, at: str, **overrides: Any) -> str:
        r = self.image(at, **overrides)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def recent(self, at: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get("/v2/recent_tasks", at, params=params)
        assert r.status_code == 200, r.text
        return r.json()["task_responses"]

    def upload(self, at: str, data: bytes = PNG, path: str = "/uploads", **fields: str) -> Any:
        files = {"file": ("image.png", data, "image/png")}
        return self.c.post(
            f"/backend{path}", files=files, data=fields, headers={"Authorization": f"Bearer {at}"}
        )

    def upload_id(self, at: str, data: bytes = PNG) -> str:
        r = self.upload(at, data, file_name="image.png")
        assert r.status_code == 200, r.text
        return r.json()["id"]


@pytest.fixture
def sim() -> Iterator[ImageSim]:
    with make_client() as client:
        yield ImageSim(client)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Parse a PNG strictly (signature, lengths, CRCs), returning its chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    return chunks


# ----- images ----------------------------------------------------------------------------------------


def test_image_task_runs_to_succeeded_with_downloadable_pngs(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    tid = sim.image_id(at, width=540, height=360, n_variants=2, prompt="two foxes")
    assert tid.startswith("task_01")
    (item,) = sim.recent(at)
    assert (item["id"], item["status"], item["progress_pct"], item["generations"]) == (tid, "queued", 0.0, [])
    seen = []
    for _ in range(12):
        sim.advance(1)
        (item,) = sim.recent(at)
        seen.append((item["status"], item["progress_pct"]))
    statuses = [s for s, _ in seen]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    running = [p for s, p in seen if s == "running"]
    assert running == sorted(running) and running[0] < running[-1] and all(0 < p < 1 for p in running)
    assert item["progress_pct"] == 1.0 and "failure_reason" not in item
    gens = item["generations"]
    assert len(gens) == 2 and len({g["id"] for g in gens}) == 2
    for gen in gens:
        assert gen["id"].startswith("gen_") and gen["task_id"] == tid
        assert (gen["width"], gen["height"]) == (540, 360) and "sig=" in gen["url"]

    info = sim.task(tid)
    assert info["kind"] == "image" and info["status"] == "succeeded" and len(info["image_sha256"]) == 2
    assert info["generation_ids"] == [g["id"] for g in gens]
    hashes = []
    for gen, expected in zip(gens, info["image_sha256"], strict=True):
        r = sim.fetch(gen["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        chunks = _png_chunks(r.content)
        width, height = struct.unpack(">II", chunks[0][1][:8])
        assert (width, height) == (540, 360)
        pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
        assert len(pixels) == height * (1 + 3 * width)
        assert any(kind == b"tEXt" and tid.encode() in body for kind, body in chunks)
        assert hashlib.sha256(r.content).hexdigest() == expected
        hashes.append(expected)
    assert hashes[0] != hashes[1], "each variant has its own bytes"
    assert sim.c.get(f"/media/images/{tid}/2.png").status_code == 404
    assert sim.c.get(f"/media/images/{tid}/x.png").status_code == 404


def test_image_media_missing_until_succeeded_and_distinct_per_task(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    a, b = sim.image_id(at), sim.image_id(at)
    assert sim.c.get(f"/media/images/{a}/0.png").status_code == 404
    sim.advance(IMAGE_DONE_AFTER)
    assert sim.c.get(f"/media/images/{a}/0.png").status_code == 200
    assert sim.task(a)["image_sha256"] != sim.task(b)["image_sha256"]


def test_recent_tasks_are_per_account_images_only_newest_first(sim: ImageSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    other = sim.account()["access_token"]
    ids = []
    for _ in range(3):
        ids.append(sim.image_id(at))
        sim.advance(1)
    sim.image_id(other)
    sim.task_id(at)  # a video: never listed in recent_tasks
    assert [t["id"] for t in sim.recent(at)] == ids[::-1]
    assert [t["id"] for t in sim.recent(at, limit=2)] == ids[::-1][:2]
    assert len(sim.recent(other)) == 1
    assert sim.get("/v2/recent_tasks", at, params={"limit": "x"}).status_code == 400
    assert sim.pending(at)[0]["type"] == "video_gen" and len(sim.pending(at)) == 1
    tasks = sim.c.get("/_sim/tasks", params={"account": acct["account_id"]}).json()
    assert sorted(t["kind"] for t in tasks) == ["image", "image", "image", "video"]


def test_images_ignore_the_video_limit_and_quota(sim: ImageSim) -> None:
    acct = sim.account(max_concurrent=1, quota=1)
    at = acct["access_token"]
    for _ in range(5):
        sim.image_id(at)
    sim.advance(IMAGE_DONE_AFTER)
    assert all(t["status"] == "succeeded" for t in sim.recent(at))
    status = sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()
    assert status["quota_remaining"] == 1 and status["in_flight"] == 0 and status["creates"] == 0
    assert sim.create(at).status_code == 200, "images took no video slot"
    assert sim.c.get("/_sim/stats").json()["requests_by_route"]["video_gen"] == 5


def test_image_fail_and_violation_markers(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    failed = sim.image_id(at, prompt="[sim:fail] nope")
    blocked = sim.image_id(at, prompt="[sim:violation] nope")
    sim.advance(2)
    by_id = {t["id"]: t for t in sim.recent(at)}
    assert by_id[failed]["status"] == "failed" and by_id[failed]["failure_reason"]
    assert by_id[failed]["error_message"] and by_id[failed]["generations"] == []
    assert by_id[blocked]["status"] == "running"
    sim.advance(8)
    item = {t["id"]: t for t in sim.recent(at)}[blocked]
    assert item["status"] == "failed" and "content polic" in item["failure_reason"]
    assert item["generations"] == []
    assert sim.task(blocked)["image_sha256"] is None and sim.task(failed)["status"] == "failed"


def test_image_stuck_nourl_and_lost_markers(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    stuck = sim.image_id(at, prompt="[sim:stuck] x")
    nourl = sim.image_id(at, prompt="[sim:nourl] x")
    lost = sim.image_id(at, prompt="[sim:lost] x")
    sim.advance(IMAGE_DONE_AFTER)
    by_id = {t["id"]: t for t in sim.recent(at)}
    assert lost not in by_id and sim.task(lost)["status"] == "lost"
    assert by_id[stuck]["status"] == "queued"
    assert by_id[nourl]["status"] == "succeeded" and by_id[nourl]["generations"] == []
    sim.advance(2)
    by_id = {t["id"]: t for t in sim.recent(at)}
    assert len(by_id[nourl]["generations"]) == 1 and by_id[stuck]["status"] == "queued"


def test_image_time_settings_are_scaled() -> None:
    cfg = SimConfig.from_env({"SIM_IMAGE_QUEUED_S": "4", "SIM_IMAGE_RUNNING_S": "6", "SIM_TIME_SCALE": "0.5"})
    assert (cfg.image_queued_s, cfg.image_running_s) == (4.0, 6.0)
    with make_client(time_scale=0.5, image_queued_s=4, image_running_s=6) as client:
        s = ImageSim(client)
        at = s.account()["access_token"]
        s.image_id(at)
        s.advance(2)
        assert s.recent(at)[0]["status"] == "running"
        s.advance(3)
        assert s.recent(at)[0]["status"] == "succeeded"


def test_image_create_refusals(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    for sentinel in (None, ""):
        r = sim.image(at, sentinel=sentinel)
        assert r.status_code == 400 and _error(r)["code"] == "sentinel_block"
    assert sim.image("bogus").status_code == 401
    bad = [
        ({"width": 1024, "height": 1024}, "width"),
        ({"width": 360, "height": 540.0}, "width"),
        ({"width": 540, "height": 540}, "width"),
        ({"type": "video"}, "type"),
        ({"operation": "outpaint"}, "operation"),
        ({"prompt": " "}, "prompt"),
        ({"n_variants": 0}, "n_variants"),
        ({"n_frames": 2}, "n_frames"),
        ({"operation": "remix", "inpaint_items": []}, "inpaint_items"),
    ]
    for overrides, param in bad:
        r = sim.image(at, **overrides)
        assert r.status_code == 400, overrides
        assert _error(r)["param"] == param, overrides
    assert sim.recent(at) == []


def test_image_remix_needs_an_upload_of_this_account(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    mine = sim.upload_id(at)
    theirs = sim.upload_id(other)
    file_id = sim.upload(at, path="/project_y/file/upload", use_case="profile").json()["file_id"]
    for media_id in (theirs, "media_01unknown", file_id):
        item = {"type": "image", "frame_index": 0, "upload_media_id": media_id}
        r = sim.image(at, operation="remix", inpaint_items=[item])
        assert r.status_code == 400 and _error(r)["param"] == "inpaint_items", media_id
    item = {"type": "image", "frame_index": 0, "upload_media_id": mine}
    tid = sim.image_id(at, operation="remix", inpaint_items=[item])
    assert sim.task(tid)["inputs"] == {"upload_ids": [mine]} and sim.task(tid)["operation"] == "remix"


# ----- uploads ---------------------------------------------------------------------------------------


def test_upload_sniffs_images_and_remembers_owner_and_hash(sim: ImageSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    for data, content_type in ((PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp")):
        r = sim.upload(at, data, file_name="pic")
        assert r.status_code == 200, r.text
        media_id = r.json()["id"]
        assert media_id.startswith("media_")
        info = sim.c.get(f"/_sim/uploads/{media_id}").json()
        assert info["account_id"] == acct["account_id"] and info["content_type"] == content_type
        assert info["size"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()
    for data in (b"GIF89a" + b"\x00" * 20, b"%PDF-1.7", b""):
        r = sim.upload(at, data, file_name="x.png")
        assert r.status_code == 400 and _error(r)["param"] == "file", data
    no_file = sim.c.post(
        "/backend/uploads", data={"file_name": "x"}, headers={"Authorization": f"Bearer {at}"}
    )
    assert no_file.status_code == 400
    assert sim.upload("bogus").status_code == 401
    assert sim.c.get("/_sim/uploads/media_01nope").status_code == 404
    entry = sim.c.get("/_sim/requests", params={"route": "uploads"}).json()[0]
    assert entry["body"]["file_name"] == "pic" and entry["body"]["file"]["sha256"]
    assert entry["body"]["file"]["size"] == len(PNG)


def test_file_upload_returns_an_asset_pointer(sim: ImageSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    r = sim.upload(at, WEBP, path="/project_y/file/upload", use_case="profile")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["asset_pointer"] == f"sediment://{body['file_id']}" and body["file_id"].startswith("file_")
    assert len(body["file_id"]) == len("file_") + 32
    assert body["size"] == len(WEBP) and body["contains_realistic_person"] is False
    assert body["azure_asset_pointer"]
    fetched = sim.fetch(body["url"])
    assert fetched.status_code == 200 and fetched.content == WEBP
    assert fetched.headers["content-type"] == "image/webp"
    info = sim.c.get(f"/_sim/uploads/{body['file_id']}").json()
    assert info["account_id"] == acct["account_id"] and info["use_case"] == "profile"
    r = sim.upload(at, b"not an image", path="/project_y/file/upload", use_case="profile")
    assert r.status_code == 400
    stats = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert stats == {"file_upload": 2, "media": 1}


def test_upload_routes_take_faults(sim: ImageSim) -> None:
    at = sim.account()["access_token"]
    sim.fault(fault="http_503", route="uploads", count=1)
    assert sim.upload(at, file_name="a").status_code == 503
    assert sim.upload(at, file_name="a").status_code == 200
    sim.fault(fault="heavy_load", route="recent_tasks", count=1)
    assert _error(sim.get("/v2/recent_tasks", at))["code"] == "heavy_load"
    sim.fault(fault="create_then_500", route="video_gen", count=1)
    assert sim.image(at).status_code == 500
    assert len(sim.recent(at)) == 1, "the image task exists despite the 500"
