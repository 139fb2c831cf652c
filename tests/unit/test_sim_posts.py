"""The simulator's storyboard, extension, video inputs (uploads, files, remix), posts and parser."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.test_sim import LEAVES_PENDING_AFTER, VIDEO, Sim, _error, make_client

DRAFT_AFTER = LEAVES_PENDING_AFTER + 2
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
POST_ID = re.compile(r"s_[0-9a-f]{32}")


class PostSim(Sim):
    def auth(self, at: str, sentinel: str | None = "opaque-sentinel") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {at}"}
        if sentinel is not None:
            headers["openai-sentinel-token"] = sentinel
        return headers

    def storyboard(self, at: str, sentinel: str | None = "opaque-sentinel", **overrides: Any) -> Any:
        body = {**VIDEO, "title": "Draft your video", **overrides}
        return self.c.post("/backend/nf/create/storyboard", json=body, headers=self.auth(at, sentinel))

    def extend(self, at: str, gen_id: str, sentinel: str | None = "opaque-sentinel", **overrides: Any) -> Any:
        body = {"user_prompt": "and then it rains", "extension_duration_s": 10, "enable_rewrite": True}
        return self.c.post(
            f"/backend/project_y/profile/drafts/{gen_id}/long_video_extension",
            json={**body, **overrides},
            headers=self.auth(at, sentinel),
        )

    def publish(
        self, at: str, gen_id: str, sentinel: str | None = "opaque-sentinel", **overrides: Any
    ) -> Any:
        body = {"attachments_to_create": [{"generation_id": gen_id, "kind": "sora"}], "post_text": ""}
        return self.c.post(
            "/backend/project_y/post", json={**body, **overrides}, headers=self.auth(at, sentinel)
        )

    def unpublish(self, at: str, post_id: str) -> Any:
        return self.c.delete(f"/backend/project_y/post/{post_id}", headers=self.auth(at, None))

    def parse(self, url: Any, token: str = "parser-token") -> Any:
        return self.c.post("/parser/get-sora-link", json={"url": url, "token": token})

    def draft_of(self, at: str, **overrides: Any) -> dict[str, Any]:
        """A finished draft of this account (the clock moves past one whole video)."""
        tid = self.task_id(at, **overrides)
        self.advance(DRAFT_AFTER)
        return next(d for d in self.drafts(at)["items"] if d["task_id"] == tid)

    def seed(self, **body: Any) -> dict[str, Any]:
        r = self.c.post("/_sim/posts", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def upload_id(self, at: str, path: str = "/uploads", **fields: str) -> Any:
        files = {"file": ("image.png", PNG, "image/png")}
        r = self.c.post(f"/backend{path}", files=files, data=fields, headers=self.auth(at, None))
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def sim() -> Iterator[PostSim]:
    with make_client() as client:
        yield PostSim(client)


# ----- storyboard ------------------------------------------------------------------------------------


def test_storyboard_is_a_normal_video_task(sim: PostSim) -> None:
    at = sim.account(max_concurrent=2)["access_token"]
    r = sim.storyboard(at, prompt="Shot 1:\nduration: 5.0sec\nScene: a cat")
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    assert tid.startswith("task_01") and r.json()["task_type"] == "video_gen"
    (item,) = sim.pending(at)
    assert item["id"] == tid and item["title"] == "Draft your video"
    info = sim.task(tid)
    assert info["kind"] == "storyboard" and info["status"] == "preprocessing"
    assert sim.task_id(at) and sim.storyboard(at).status_code == 429, "shares the concurrency limit"
    sim.advance(DRAFT_AFTER)
    drafts = sim.drafts(at)["items"]
    assert tid in [d["task_id"] for d in drafts]
    for sentinel in (None, ""):
        r = sim.storyboard(at, sentinel=sentinel)
        assert r.status_code == 400 and _error(r)["code"] == "sentinel_block"
    assert sim.storyboard(at, n_frames=1).status_code == 400
    routes = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert routes["nf_create_storyboard"] == 5


# ----- extension -------------------------------------------------------------------------------------


def test_extension_of_own_draft(sim: PostSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    draft = sim.draft_of(at, orientation="portrait")
    r = sim.extend(at, draft["id"], extension_duration_s=15)
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    (item,) = sim.pending(at)
    assert item["id"] == tid and item["prompt"] == "and then it rains"
    info = sim.task(tid)
    assert info["kind"] == "extension"
    assert info["inputs"]["source_generation_id"] == draft["id"]
    assert info["inputs"]["extension_duration_s"] == 15
    sim.advance(DRAFT_AFTER)
    new = next(d for d in sim.drafts(at)["items"] if d["task_id"] == tid)
    assert new["id"] != draft["id"] and (new["width"], new["height"]) == (352, 640)
    assert new["duration_s"] == draft["duration_s"] + 15
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["quota_remaining"] == 98


def test_extension_refusals(sim: PostSim) -> None:
    at = sim.account(max_concurrent=1)["access_token"]
    other = sim.account()["access_token"]
    draft = sim.draft_of(at)
    for duration in (5, 20, "10", True, None):
        r = sim.extend(at, draft["id"], extension_duration_s=duration)
        assert r.status_code == 400 and _error(r)["param"] == "extension_duration_s", duration
    r = sim.extend(at, draft["id"], sentinel=None)
    assert r.status_code == 400 and _error(r)["code"] == "sentinel_block"
    for who, gen_id in ((other, draft["id"]), (at, "gen_01doesnotexist")):
        r = sim.extend(who, gen_id)
        assert r.status_code == 404 and _error(r)["code"] == "not_found"
    assert sim.extend(at, draft["id"]).status_code == 200
    r = sim.extend(at, draft["id"])
    assert r.status_code == 429 and _error(r)["code"] == "too_many_concurrent_tasks", "counts as a video"
    unfinished = sim.c.app.state.sim.tasks[sim.task_id(other)].generation_id
    assert sim.extend(other, unfinished).status_code == 404, "no draft until the video is done"
    blocked = sim.draft_of(other, prompt="[sim:violation] x")
    assert sim.extend(other, blocked["id"]).status_code == 400


# ----- video inputs ----------------------------------------------------------------------------------


def test_create_with_upload_and_file_inputs(sim: PostSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    media_id = sim.upload_id(at, file_name="image.png")["id"]
    asset = sim.upload_id(at, "/project_y/file/upload", use_case="inpaint_safe")
    theirs = sim.upload_id(other, file_name="image.png")["id"]
    tid = sim.task_id(at, inpaint_items=[{"kind": "upload", "upload_id": media_id}])
    assert sim.task(tid)["inputs"]["upload_ids"] == [media_id] and sim.task(tid)["kind"] == "video"
    tid = sim.task_id(at, inpaint_items=[{"kind": "file", "file_id": asset["file_id"]}])
    assert sim.task(tid)["inputs"]["file_ids"] == [asset["file_id"]]
    bad = [
        [{"kind": "upload", "upload_id": theirs}],
        [{"kind": "upload", "upload_id": "media_01nope"}],
        [{"kind": "upload", "upload_id": asset["file_id"]}],
        [{"kind": "file", "file_id": media_id}],
        [{"kind": "frame", "upload_id": media_id}],
        ["media_01nope"],
    ]
    for items in bad:
        r = sim.create(at, inpaint_items=items)
        assert r.status_code == 400 and _error(r)["param"] == "inpaint_items", items


# ----- posts, parser, remix --------------------------------------------------------------------------


def test_publish_detail_parser_delete(sim: PostSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    viewer = sim.account()["access_token"]
    draft = sim.draft_of(at)
    r = sim.publish(at, draft["id"], post_text="look")
    assert r.status_code == 200, r.text
    post = r.json()["post"]
    post_id = post["id"]
    assert POST_ID.fullmatch(post_id) and post["permalink"] == f"https://sora.chatgpt.com/p/{post_id}"
    assert post["text"] == "look" and post["is_owner"] is True
    control = sim.c.get(f"/_sim/posts/{post_id}").json()
    assert (control["id"], control["account_id"], control["generation_id"], control["deleted"]) == (
        post_id,
        acct["account_id"],
        draft["id"],
        False,
    )

    detail = sim.get(f"/project_y/post/{post_id}", viewer)
    assert detail.status_code == 200
    body = detail.json()
    assert body["post"]["id"] == post_id and body["post"]["is_owner"] is False
    (att,) = body["attachments"]
    assert att == body["post"]["attachments"][0]
    assert att["id"] == f"{post_id}-attachment-0" and att["kind"] == "sora"
    assert att["generation_id"] == draft["id"] and att["task_id"] == draft["task_id"]
    assert (att["width"], att["height"], att["n_frames"]) == (640, 352, 300)
    assert "00000_wm/src.mp4" in att["downloadable_url"] and "00000_wm/src.mp4" in att["url"]
    clean = att["encodings"]["source"]["path"]
    assert "/00000/src.mp4" in clean and att["encodings"]["thumbnail"]["path"]
    info = sim.task(draft["task_id"])
    assert hashlib.sha256(sim.fetch(clean).content).hexdigest() == info["video_sha256"]

    link = sim.parse(post["permalink"])
    assert link.status_code == 200
    download = link.json()["download_link"]
    assert "/00000/src.mp4" in download and "_wm" not in download
    assert hashlib.sha256(sim.fetch(download).content).hexdigest() == info["video_sha256"]
    entry = sim.c.get("/_sim/requests", params={"route": "parser"}).json()[-1]
    assert entry["body"]["token"] == "parser-token" and entry["account_id"] is None

    assert sim.unpublish(viewer, post_id).status_code == 404, "only the owner deletes"
    deleted = sim.unpublish(at, post_id)
    assert deleted.status_code == 204 and deleted.content == b""
    assert sim.c.get(f"/_sim/posts/{post_id}").json()["deleted"] is True
    for who in (at, viewer):
        r = sim.get(f"/project_y/post/{post_id}", who)
        assert r.status_code == 404 and _error(r)["code"] == "not_found"
    assert sim.unpublish(at, post_id).status_code == 404
    gone = sim.parse(f"https://sora.chatgpt.com/p/{post_id}")
    assert gone.status_code == 404 and gone.json()["error"]
    assert sim.parse("https://sora.chatgpt.com/p/s_" + "0" * 32).status_code == 404
    assert sim.parse(None).status_code == 400
    routes = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert (routes["post_create"], routes["post_get"], routes["post_delete"], routes["parser"]) == (
        1,
        3,
        3,
        4,
    )


def test_publish_refusals(sim: PostSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    draft = sim.draft_of(at)
    r = sim.publish(at, draft["id"], sentinel=None)
    assert r.status_code == 400 and _error(r)["code"] == "sentinel_block"
    for who, gen_id in ((other, draft["id"]), (at, "gen_01nope")):
        r = sim.publish(who, gen_id)
        assert r.status_code == 404 and _error(r)["code"] == "not_found"
    assert sim.publish(at, draft["id"], attachments_to_create=[]).status_code == 400
    assert (
        sim.publish(at, draft["id"], attachments_to_create=[{"generation_id": draft["id"]}]).status_code
        == 400
    )
    assert sim.publish(at, draft["id"], post_text=3).status_code == 400
    blocked = sim.draft_of(at, prompt="[sim:violation] x")
    assert sim.publish(at, blocked["id"]).status_code == 400
    assert sim.get("/project_y/post/s_" + "a" * 32, at).status_code == 404
    assert sim.get("/project_y/post/whatever", at).status_code == 404
    assert sim.c.get("/_sim/posts").json() == []


def test_seeded_post_can_be_remixed_by_anyone(sim: PostSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    seeded = sim.seed()
    post_id = seeded["id"]
    assert POST_ID.fullmatch(post_id) and seeded["account_id"] != acct["account_id"]
    assert seeded["generation_id"].startswith("gen_") and seeded["deleted"] is False
    assert [a["account_id"] for a in sim.c.get("/_sim/accounts").json()] == [acct["account_id"]]
    assert set(sim.c.get("/_sim/stats").json()["creates"]) == {acct["account_id"]}

    detail = sim.get(f"/project_y/post/{post_id}", at).json()
    assert detail["post"]["is_owner"] is False and detail["attachments"][0]["generation_id"]
    assert sim.fetch(detail["attachments"][0]["encodings"]["source"]["path"]).status_code == 200
    assert sim.parse(f"https://sora.chatgpt.com/p/{post_id}").status_code == 200

    tid = sim.task_id(at, remix_target_id=post_id, size=None)
    info = sim.task(tid)
    assert info["kind"] == "remix" and info["inputs"]["remix_target_id"] == post_id
    assert sim.get(f"/project_y/post/{post_id}", at).json()["post"]["remix_count"] == 1
    sim.advance(DRAFT_AFTER)
    draft = next(d for d in sim.drafts(at)["items"] if d["task_id"] == tid)
    assert draft["creation_config"]["remix_target_post"] == post_id
    assert sim.unpublish(at, post_id).status_code == 404, "not the owner"

    r = sim.create(at, remix_target_id="s_" + "b" * 32)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"
    r = sim.create(at, remix_target_id="not-a-post")
    assert r.status_code == 400 and _error(r)["param"] == "remix_target_id"
    r = sim.storyboard(at, remix_target_id="s_" + "c" * 32)
    assert r.status_code == 404


def test_remix_of_a_deleted_post_is_refused(sim: PostSim) -> None:
    at = sim.account()["access_token"]
    draft = sim.draft_of(at)
    post_id = sim.publish(at, draft["id"]).json()["post"]["id"]
    assert sim.task_id(at, remix_target_id=post_id)
    assert sim.unpublish(at, post_id).status_code == 204
    assert sim.create(at, remix_target_id=post_id).status_code == 404


def test_seed_post_options_and_control_errors(sim: PostSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    seeded = sim.seed(account=acct["account_id"], orientation="portrait", prompt="mine", text="hi")
    assert seeded["account_id"] == acct["account_id"] and seeded["text"] == "hi"
    (draft,) = sim.drafts(at)["items"]
    assert draft["id"] == seeded["generation_id"] and (draft["width"], draft["height"]) == (352, 640)
    assert sim.get(f"/project_y/post/{seeded['id']}", at).json()["post"]["is_owner"] is True
    assert sim.unpublish(at, seeded["id"]).status_code == 204
    assert sim.c.post("/_sim/posts", json={"account": "acct_nope"}).status_code == 404
    assert sim.c.post("/_sim/posts", json={"orientation": "diagonal"}).status_code == 400
    assert sim.c.get("/_sim/posts/s_nope").status_code == 404
    assert sim.c.post("/_sim/posts").status_code == 200, "an empty body is fine"
    assert len(sim.c.get("/_sim/posts").json()) == 2
    assert len(sim.c.get("/_sim/posts", params={"account": acct["account_id"]}).json()) == 1


def test_create_then_500_on_publish_leaves_the_post(sim: PostSim) -> None:
    at = sim.account()["access_token"]
    draft = sim.draft_of(at)
    sim.fault(fault="create_then_500", route="post_create", count=1)
    assert sim.publish(at, draft["id"]).status_code == 500
    (post,) = sim.c.get("/_sim/posts").json()
    assert post["generation_id"] == draft["id"] and not post["deleted"]
    sim.fault(fault="http_502", route="parser", count=1)
    assert sim.parse(f"https://sora.chatgpt.com/p/{post['id']}").status_code == 502
    sim.fault(fault="http_503", route="post_delete", count=1)
    assert sim.unpublish(at, post["id"]).status_code == 503
    assert sim.unpublish(at, post["id"]).status_code == 204


def test_new_routes_need_a_bearer(sim: PostSim) -> None:
    for method, path in (
        ("POST", "/nf/create/storyboard"),
        ("POST", "/project_y/profile/drafts/gen_01x/long_video_extension"),
        ("POST", "/project_y/post"),
        ("DELETE", "/project_y/post/s_" + "a" * 32),
        ("GET", "/project_y/post/s_" + "a" * 32),
        ("POST", "/video_gen"),
        ("GET", "/v2/recent_tasks"),
        ("POST", "/uploads"),
        ("POST", "/project_y/file/upload"),
    ):
        r = sim.c.request(method, f"/backend{path}", headers={"openai-sentinel-token": "x"})
        assert r.status_code == 401 and _error(r)["code"] == "token_invalidated", path
