"""The bundled Sora simulator, driven in-process with a manual clock."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from sim import SimConfig, create_app

PUBLIC = "http://sim.test:9000"
# At scale 1: preprocessing 1 s, queued 45 s, running 60 s, processing 5 s, draft gap 2 s.
LEAVES_PENDING_AFTER = 111.0
VIDEO = {
    "kind": "video",
    "prompt": "a cat on a skateboard",
    "orientation": "landscape",
    "size": "small",
    "n_frames": 300,
    "model": "sy_8",
    "inpaint_items": [],
    "style_id": None,
    # Sent as null by real clients; the simulator must accept and ignore them.
    "title": None,
    "remix_target_id": None,
    "metadata": None,
    "cameo_ids": None,
    "some_future_field": {"x": 1},
}


class Sim:
    def __init__(self, client: TestClient[Any]) -> None:
        self.c = client

    def account(self, **fields: Any) -> dict[str, Any]:
        r = self.c.post("/_sim/accounts", json=fields)
        assert r.status_code == 200, r.text
        return r.json()

    def advance(self, seconds: float) -> None:
        assert self.c.post("/_sim/clock/advance", json={"seconds": seconds}).status_code == 200

    def get(self, path: str, at: str | None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {at}"} if at else {}
        return self.c.get(f"/backend{path}", headers=headers, **kw)

    def create(self, at: str, sentinel: str | None = "opaque-sentinel", **overrides: Any) -> Any:
        headers = {"Authorization": f"Bearer {at}"}
        if sentinel is not None:
            headers["openai-sentinel-token"] = sentinel
        return self.c.post("/backend/nf/create", json={**VIDEO, **overrides}, headers=headers)

    def task_id(self, at: str, **overrides: Any) -> str:
        r = self.create(at, **overrides)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def pending(self, at: str) -> list[dict[str, Any]]:
        r = self.get("/nf/pending/v2", at)
        assert r.status_code == 200, r.text
        return r.json()

    def drafts(self, at: str, **params: Any) -> dict[str, Any]:
        r = self.get("/project_y/profile/drafts", at, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def task(self, task_id: str) -> dict[str, Any]:
        return self.c.get(f"/_sim/tasks/{task_id}").json()

    def fault(self, **spec: Any) -> str:
        r = self.c.post("/_sim/faults", json=spec)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def fetch(self, url: str) -> Any:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC
        return self.c.get(f"{parts.path}?{parts.query}")


def make_client(**overrides: Any) -> TestClient[Any]:
    return TestClient(create_app(SimConfig(clock="manual", public_url=PUBLIC, **overrides)))


@pytest.fixture
def sim() -> Iterator[Sim]:
    with make_client() as client:
        yield Sim(client)


def _jwt(payload: dict[str, Any]) -> str:
    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(payload)}.c2ln"


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _error(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]


# ----- config ----------------------------------------------------------------------------------------


def test_config_from_env() -> None:
    cfg = SimConfig.from_env(
        {
            "SIM_PORT": "9999",
            "SIM_TIME_SCALE": "0.01",
            "SIM_CLOCK": "manual",
            "SIM_BACKEND_PREFIX": "api/backend/",
            "SIM_STRICT_SENTINEL": "true",
            "SIM_MAX_CONCURRENT": "2",
            "SIM_QUEUED_S": "10",
        }
    )
    assert (cfg.port, cfg.time_scale, cfg.clock, cfg.backend_prefix) == (9999, 0.01, "manual", "/api/backend")
    assert cfg.public_url == "http://127.0.0.1:9999"
    assert cfg.strict_sentinel and cfg.max_concurrent == 2
    assert cfg.scaled(cfg.queued_s) == pytest.approx(0.1)
    assert SimConfig.from_env({}).backend_prefix == "/backend"
    with pytest.raises(ValueError):
        SimConfig.from_env({"SIM_CLOCK": "sundial"})


def test_time_scale_shortens_every_phase() -> None:
    with make_client(time_scale=0.01) as client:
        s = Sim(client)
        at = s.account()["access_token"]
        tid = s.task_id(at)
        s.advance(0.46 + 0.01)  # 0.01 s preprocessing + 0.45 s queue
        assert s.pending(at)[0]["status"] == "running"
        s.advance(LEAVES_PENDING_AFTER * 0.01)
        assert s.pending(at) == []
        assert s.drafts(at)["items"][0]["task_id"] == tid


# ----- auth ------------------------------------------------------------------------------------------


def test_missing_unknown_and_expired_tokens_get_401(sim: Sim) -> None:
    for at in (None, "not-a-token"):
        r = sim.get("/me", at)
        assert r.status_code == 401
        assert _error(r)["code"] == "token_invalidated"
        assert _error(r)["message"].startswith("Your authentication token has been invalidated")
    acct = sim.account(email="ann@example.com", plan="chatgpt_pro", token_ttl_s=100)
    at = acct["access_token"]
    claims = _claims(at)
    assert claims["https://api.openai.com/profile"]["email"] == "ann@example.com"
    assert claims["exp"] - claims["iat"] == 100
    me = sim.get("/me", at).json()
    assert me["email"] == "ann@example.com" and "name" in me and "username" in me
    sub = sim.get("/billing/subscriptions", at).json()["data"][0]
    assert sub["plan"] == {"id": "chatgpt_pro", "title": "ChatGPT Pro"} and sub["end_ts"]
    sim.advance(101)
    r = sim.get("/billing/subscriptions", at)
    assert r.status_code == 401 and _error(r)["code"] == "token_expired"


def test_registering_an_existing_access_token(sim: Sim) -> None:
    exp = int(sim.c.get("/_sim/clock").json()["now"]) + 50
    token = _jwt({"exp": exp, "sub": "user-x", "https://api.openai.com/profile": {"email": "bo@example.com"}})
    first = sim.account(access_token=token)
    again = sim.account(access_token=token, email="ignored@example.com")
    assert first == again and first["email"] == "bo@example.com" and first["access_token"] == token
    assert sim.get("/me", token).status_code == 200
    sim.advance(60)
    assert _error(sim.get("/me", token))["code"] == "token_expired"


# ----- create ----------------------------------------------------------------------------------------


def test_sentinel_header_is_required(sim: Sim) -> None:
    at = sim.account()["access_token"]
    for sentinel in (None, "", "  "):
        r = sim.create(at, sentinel=sentinel)
        assert r.status_code == 400 and _error(r)["code"] == "sentinel_block"
    r = sim.create(at)
    assert r.status_code == 200
    body = r.json()
    assert body["id"].startswith("task_01") and len(body["id"]) == 33
    assert body["task_type"] == "video_gen"
    assert body["rate_limit_and_credit_balance"]["estimated_num_videos_remaining"] == 100


def test_strict_sentinel_accepts_only_issued_values() -> None:
    with make_client(strict_sentinel=True) as client:
        s = Sim(client)
        at = s.account()["access_token"]
        assert _error(s.create(at, sentinel="made-up"))["code"] == "sentinel_block"
        issued = client.post("/sentinel", json={"flow": "sora_create_task"}).json()
        assert issued["sentinel_token"] and issued["device_id"]
        assert s.create(at, sentinel=issued["sentinel_token"]).status_code == 200
        client.post("/_sim/sentinel/revoke")
        assert s.create(at, sentinel=issued["sentinel_token"]).status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "image"),
        ("orientation", "diagonal"),
        ("n_frames", 299),
        ("model", "sy_9"),
        ("size", "huge"),
        ("prompt", ""),
    ],
)
def test_invalid_create_bodies_get_400(sim: Sim, field: str, value: Any) -> None:
    at = sim.account()["access_token"]
    r = sim.create(at, **{field: value})
    assert r.status_code == 400
    assert _error(r)["param"] == field


def test_fourth_concurrent_create_gets_429(sim: Sim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    for _ in range(3):
        assert sim.create(at).status_code == 200
    r = sim.create(at)
    assert r.status_code == 429
    err = _error(r)
    assert err["code"] == "too_many_concurrent_tasks"
    assert err["details"]["num_tasks"] == 3
    assert "You already have 3 generations in progress" in err["message"]
    other = sim.account()["access_token"]
    assert sim.create(other).status_code == 200, "the limit is per account"
    sim.advance(LEAVES_PENDING_AFTER)
    assert sim.create(at).status_code == 200, "slots free up once tasks leave pending"
    status = sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()
    assert status["in_flight"] == 1 and status["max_in_flight_seen"] == 3 and status["creates"] == 4
    assert sim.c.get("/_sim/stats").json()["max_in_flight"][acct["account_id"]] == 3


def test_per_account_concurrency_override(sim: Sim) -> None:
    at = sim.account(max_concurrent=1)["access_token"]
    assert sim.create(at).status_code == 200
    r = sim.create(at)
    assert r.status_code == 429 and _error(r)["details"]["num_tasks"] == 1


# ----- pending and drafts ----------------------------------------------------------------------------


def test_status_sequence_and_progress(sim: Sim) -> None:
    at = sim.account()["access_token"]
    tid = sim.task_id(at, prompt="a slow sunrise", title="Sunrise")
    seen: list[tuple[str, float | None]] = []
    elapsed = 0.0
    while elapsed <= LEAVES_PENDING_AFTER + 1:
        items = sim.pending(at)
        if items:
            (item,) = items
            assert item["id"] == tid and item["prompt"] == "a slow sunrise" and item["generations"] == []
            assert item["title"] == "Sunrise"
            seen.append((item["status"], item["progress_pct"]))
        sim.advance(4)
        elapsed += 4
    statuses = [s for s, _ in seen]
    order = ["preprocessing", "queued", "running", "processing"]
    assert sorted(set(statuses), key=order.index) == order
    assert statuses == sorted(statuses, key=order.index), "statuses only move forward"
    for status, pct in seen:
        if status in ("preprocessing", "queued"):
            assert pct in (None, 0, 0.0)
        elif status == "running":
            assert 0.1 <= pct <= 0.95
        else:
            assert pct == 1.0
    running = [p for s, p in seen if s == "running"]
    assert running[0] == pytest.approx(0.1, abs=0.05) and running == sorted(running) and running[-1] > 0.8
    assert sim.pending(at) == [] and sim.get("/nf/pending", at).json() == []


def test_state_depends_only_on_time_not_polling(sim: Sim) -> None:
    busy, idle = sim.account()["access_token"], sim.account()["access_token"]
    sim.task_id(busy)
    sim.task_id(idle)
    for _ in range(19):  # preprocessing 1 + queued 45 + half of running = 76 s
        sim.pending(busy)
        sim.advance(4)
    (polled,), (unpolled,) = sim.pending(busy), sim.pending(idle)
    assert polled["status"] == unpolled["status"] == "running"
    assert polled["progress_pct"] == unpolled["progress_pct"] == pytest.approx(0.525)


def test_draft_appears_after_gap_with_downloadable_media(sim: Sim) -> None:
    at = sim.account()["access_token"]
    tid = sim.task_id(at, orientation="portrait", n_frames=450, style_id="anime")
    sim.advance(LEAVES_PENDING_AFTER)
    assert sim.pending(at) == [] and sim.drafts(at)["items"] == [], "in neither list during the gap"
    assert sim.task(tid)["status"] == "awaiting_draft"
    sim.advance(2)
    page = sim.drafts(at)
    (draft,) = page["items"]
    assert page["cursor"] is None
    assert draft["kind"] == "sora_draft" and draft["task_id"] == tid
    assert draft["id"].startswith("gen_") and draft["generation_id"] == draft["id"]
    assert (draft["width"], draft["height"]) == (352, 640) and draft["duration_s"] == 15
    assert draft["creation_config"]["n_frames"] == 450 and draft["creation_config"]["style_id"] == "anime"
    assert draft["generation_type"] == "video_gen" and draft["tags"] == [] and draft["created_at"] > 0
    assert set(draft["encodings"]) == {"source", "source_wm", "md", "gif", "thumbnail", "unfurl"}
    assert "sig=" in draft["downloadable_url"] and "00000_wm/src.mp4" in draft["downloadable_url"]
    assert sim.get("/project_y/profile/drafts/v2", at).json()["items"][0]["id"] == draft["id"]

    info = sim.task(tid)
    assert info["status"] == "completed" and info["draft_id"] == draft["id"] and info["left_pending_at"]
    wm = sim.fetch(draft["downloadable_url"])
    assert wm.status_code == 200 and wm.headers["content-type"] == "video/mp4"
    assert int(wm.headers["content-length"]) == len(wm.content) < 10_000
    assert hashlib.sha256(wm.content).hexdigest() == info["video_wm_sha256"]
    clean = sim.fetch(draft["encodings"]["source"]["path"])
    assert hashlib.sha256(clean.content).hexdigest() == info["video_sha256"] != info["video_wm_sha256"]
    assert clean.content[4:8] == b"ftyp" and tid.encode() in clean.content
    thumb = sim.fetch(draft["encodings"]["thumbnail"]["path"])
    assert thumb.headers["content-type"] == "image/webp" and thumb.content[:4] == b"RIFF"
    assert thumb.content[8:12] == b"WEBP"
    gif = sim.fetch(draft["encodings"]["gif"]["path"])
    assert gif.headers["content-type"] == "image/gif" and gif.content[:3] == b"GIF"


def test_each_task_gets_distinct_media(sim: Sim) -> None:
    at = sim.account()["access_token"]
    a, b = sim.task_id(at), sim.task_id(at)
    sim.advance(LEAVES_PENDING_AFTER + 2)
    assert sim.task(a)["video_sha256"] != sim.task(b)["video_sha256"]
    assert sim.c.get("/media/videos/task_01nope/00000/src.mp4").status_code == 404


def test_media_is_missing_until_the_video_is_done(sim: Sim) -> None:
    at = sim.account()["access_token"]
    tid = sim.task_id(at)
    assert sim.c.get(f"/media/videos/{tid}/00000/src.mp4").status_code == 404
    sim.advance(LEAVES_PENDING_AFTER)
    assert sim.c.get(f"/media/videos/{tid}/00000/src.mp4").status_code == 200


def test_drafts_are_per_account_newest_first_and_paginated(sim: Sim) -> None:
    at = sim.account(max_concurrent=10)["access_token"]
    other = sim.account()["access_token"]
    ids = []
    for _ in range(5):
        ids.append(sim.task_id(at))
        sim.advance(1)
    sim.task_id(other)
    sim.advance(LEAVES_PENDING_AFTER + 2)
    first = sim.drafts(at, limit=2)
    assert [d["task_id"] for d in first["items"]] == ids[::-1][:2] and first["cursor"]
    second = sim.drafts(at, limit=2, cursor=first["cursor"])
    third = sim.drafts(at, limit=2, cursor=second["cursor"])
    assert [d["task_id"] for d in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["cursor"] is None
    assert len(sim.drafts(at)["items"]) == 5 and len(sim.drafts(other)["items"]) == 1
    assert sim.get("/project_y/profile/drafts", at, params={"cursor": "%%%"}).status_code == 400


# ----- markers ---------------------------------------------------------------------------------------


def test_violation_marker(sim: Sim) -> None:
    at = sim.account()["access_token"]
    tid = sim.task_id(at, prompt="[sim:violation] something forbidden")
    sim.advance(LEAVES_PENDING_AFTER + 2)
    (draft,) = sim.drafts(at)["items"]
    assert draft["kind"] == "sora_content_violation" and draft["task_id"] == tid
    assert draft["reason_str"].startswith("This content may violate our guardrails")
    assert draft["markdown_reason_str"]
    assert not {"url", "downloadable_url", "encodings"} & set(draft)
    assert sim.task(tid)["video_sha256"] is None


def test_fail_marker(sim: Sim) -> None:
    acct = sim.account(quota=5)
    at = acct["access_token"]
    tid = sim.task_id(at, prompt="[sim:fail] doomed")
    sim.advance(46)
    (item,) = sim.pending(at)
    assert (
        item["id"] == tid and item["status"] == "failed" and item["failure_reason"] and item["error_message"]
    )
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["in_flight"] == 0
    sim.advance(60)
    assert sim.pending(at) == []
    sim.advance(600)
    assert sim.drafts(at)["items"] == [] and sim.task(tid)["status"] == "failed"
    assert (
        sim.get("/nf/check", at).json()["rate_limit_and_credit_balance"]["estimated_num_videos_remaining"]
        == 5
    )


def test_stuck_lost_and_nourl_markers(sim: Sim) -> None:
    at = sim.account()["access_token"]
    stuck = sim.task_id(at, prompt="[sim:stuck] forever")
    lost = sim.task_id(at, prompt="[sim:lost] gone")
    nourl = sim.task_id(at, prompt="[sim:nourl] later")
    sim.advance(LEAVES_PENDING_AFTER + 2)
    assert [(i["id"], i["status"], i["progress_pct"]) for i in sim.pending(at)] == [(stuck, "queued", 0.0)]
    (draft,) = sim.drafts(at)["items"]
    assert draft["task_id"] == nourl and draft["kind"] == "sora_draft"
    assert "url" not in draft and "downloadable_url" not in draft
    assert sim.task(nourl)["status"] == "draft_without_url"
    sim.advance(2)
    (draft,) = sim.drafts(at)["items"]
    assert draft["url"] and draft["downloadable_url"]
    sim.advance(100_000)
    assert [i["status"] for i in sim.pending(at)] == ["queued"]
    assert [d["task_id"] for d in sim.drafts(at)["items"]] == [nourl]
    assert sim.task(lost)["status"] == "lost" and sim.task(stuck)["status"] == "queued"


# ----- quota -----------------------------------------------------------------------------------------


def test_quota_counts_down_and_refuses_at_zero(sim: Sim) -> None:
    acct = sim.account(quota=2)
    at = acct["access_token"]
    sim.task_id(at)
    sim.task_id(at)
    check = sim.get("/nf/check", at).json()["rate_limit_and_credit_balance"]
    assert check["estimated_num_videos_remaining"] == 2, "only finished videos count"
    sim.advance(LEAVES_PENDING_AFTER)
    check = sim.get("/nf/check", at).json()["rate_limit_and_credit_balance"]
    assert check["estimated_num_videos_remaining"] == 0 and check["rate_limit_reached"] is True
    resets = check["access_resets_in_seconds"]
    assert 0 < resets <= 86400
    r = sim.create(at)
    assert r.status_code == 429 and _error(r)["code"] == "rate_limit_reached"
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["quota_remaining"] == 0
    sim.advance(resets)
    check = sim.get("/nf/check", at).json()["rate_limit_and_credit_balance"]
    assert check["estimated_num_videos_remaining"] == 2 and check["rate_limit_reached"] is False
    assert sim.create(at).status_code == 200


# ----- token refresh ---------------------------------------------------------------------------------


def test_session_token_gives_fresh_access_token(sim: Sim) -> None:
    acct = sim.account(email="st@example.com")
    cookie = {"Cookie": f"__Secure-next-auth.session-token={acct['session_token']}"}
    sim.advance(10)
    r = sim.c.get("/api/auth/session", headers=cookie)
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["email"] == "st@example.com" and body["expires"].endswith("Z")
    assert body["accessToken"] != acct["access_token"]
    assert _claims(body["accessToken"])["iat"] > _claims(acct["access_token"])["iat"]
    assert sim.get("/me", body["accessToken"]).json()["email"] == "st@example.com"
    bad = sim.c.get("/api/auth/session", headers={"Cookie": "__Secure-next-auth.session-token=nope"})
    assert bad.status_code == 401


def test_refresh_token_rotates_and_is_bound_to_client_id(sim: Sim) -> None:
    acct = sim.account(client_id="app_OHnYmJt5u1XEdhDUx0ig1ziv")
    body = {
        "client_id": acct["client_id"],
        "grant_type": "refresh_token",
        "redirect_uri": "com.openai.sora://auth.openai.com/android/com.openai.sora/callback",
        "refresh_token": acct["refresh_token"],
    }
    wrong = sim.c.post("/oauth/token", json={**body, "client_id": "app_LlGpXReQgckcGGUo2JrYvtJK"})
    assert wrong.status_code in (400, 401) and _error(wrong)["param"] == "client_id"
    r = sim.c.post("/oauth/token", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert answer["refresh_token"] != acct["refresh_token"] and answer["expires_in"] == 10 * 86400
    assert sim.get("/me", answer["access_token"]).status_code == 200
    reused = sim.c.post("/oauth/token", json=body)
    assert reused.status_code == 401 and _error(reused)["code"] == "refresh_token_reused"
    again = sim.c.post("/oauth/token", json={**body, "refresh_token": answer["refresh_token"]})
    assert again.status_code == 200
    form = sim.c.post("/oauth/token", data={**body, "refresh_token": again.json()["refresh_token"]})
    assert form.status_code == 200, "form-encoded bodies work too"


def test_revoked_tokens(sim: Sim) -> None:
    acct = sim.account()
    r = sim.c.post(f"/_sim/accounts/{acct['account_id']}/revoke", json={"tokens": ["access", "refresh"]})
    assert r.status_code == 200
    assert _error(sim.get("/me", acct["access_token"]))["code"] == "token_invalidated"
    body = {
        "client_id": acct["client_id"],
        "grant_type": "refresh_token",
        "redirect_uri": "x",
        "refresh_token": acct["refresh_token"],
    }
    assert sim.c.post("/oauth/token", json=body).status_code == 401
    cookie = {"Cookie": f"__Secure-next-auth.session-token={acct['session_token']}"}
    fresh = sim.c.get("/api/auth/session", headers=cookie).json()["accessToken"]
    assert sim.get("/me", fresh).status_code == 200


# ----- faults ----------------------------------------------------------------------------------------


def test_fault_for_next_n_requests_then_clears_itself(sim: Sim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    other = sim.account()["access_token"]
    sim.fault(fault="http_503", route="me", account=acct["account_id"], count=2)
    assert [sim.get("/me", at).status_code for _ in range(3)] == [503, 503, 200]
    assert sim.get("/me", other).status_code == 200
    assert sim.c.get("/_sim/faults").json() == []


def test_fault_shapes(sim: Sim) -> None:
    at = sim.account()["access_token"]
    fid = sim.fault(fault="cloudflare")
    r = sim.get("/nf/check", at)
    assert r.status_code == 403 and r.headers["cf-mitigated"] == "challenge" and r.headers["cf-ray"]
    assert r.headers["content-type"].startswith("text/html") and "window._cf_chl_opt" in r.text
    assert "Just a moment" in r.text
    assert sim.c.request("DELETE", f"/_sim/faults/{fid}").status_code == 200
    expected = {
        "token_invalidated": (401, "token_invalidated"),
        "sentinel_block": (400, "sentinel_block"),
        "too_many_concurrent_tasks": (429, "too_many_concurrent_tasks"),
        "heavy_load": (429, "heavy_load"),
        "rate_limited": (429, None),
        "unsupported_country_code": (403, "unsupported_country_code"),
        "phone_number_required": (403, "phone_number_required"),
        "low_trust": (400, None),
        "http_500": (500, None),
    }
    for name, (status, code) in expected.items():
        sim.fault(fault=name, count=1, params={"country": "RU"})
        r = sim.create(at)
        assert r.status_code == status, name
        assert _error(r)["code"] == code, name
    sim.fault(fault="unparseable_token", count=1)
    assert "Could not parse your authentication token" in _error(sim.get("/me", at))["message"]
    sim.fault(fault="heavy_load", count=1, params={"status": 503})
    assert sim.get("/me", at).status_code == 503
    assert sim.c.post("/_sim/faults", json={"fault": "nope"}).status_code == 400
    assert sim.c.post("/_sim/faults", json={"fault": "http_500", "route": "nowhere"}).status_code == 400
    assert sim.get("/me", at).status_code == 200


def test_probability_and_clear_all(sim: Sim) -> None:
    at = sim.account()["access_token"]
    sim.fault(fault="http_502", probability=0.0)
    assert sim.get("/me", at).status_code == 200
    sim.fault(fault="http_502", probability=1.0)
    assert sim.get("/me", at).status_code == 502
    assert sim.c.request("DELETE", "/_sim/faults").status_code == 200
    assert sim.get("/me", at).status_code == 200


def test_create_then_500_really_creates(sim: Sim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    sim.fault(fault="create_then_500", count=1)
    r = sim.create(at)
    assert r.status_code == 500
    (item,) = sim.pending(at)
    assert sim.c.get("/_sim/stats").json()["creates"][acct["account_id"]] == 1
    assert sim.task(item["id"])["account_id"] == acct["account_id"]


def test_media_and_drafts_faults(sim: Sim) -> None:
    at = sim.account()["access_token"]
    sim.task_id(at)
    sim.advance(LEAVES_PENDING_AFTER + 2)
    url = sim.drafts(at)["items"][0]["downloadable_url"]
    sim.fault(fault="media_404", count=1)
    assert sim.fetch(url).status_code == 404
    assert sim.fetch(url).status_code == 200
    sim.fault(fault="old_drafts_only")
    assert sim.get("/project_y/profile/drafts/v2", at).status_code == 404
    assert sim.get("/project_y/profile/drafts", at).status_code == 200


def test_slow_fault_delays_in_real_seconds(sim: Sim) -> None:
    at = sim.account()["access_token"]
    sim.fault(fault="slow", route="me", count=1, params={"delay_s": 0.2})
    started = time.monotonic()
    assert sim.get("/me", at).status_code == 200
    assert time.monotonic() - started >= 0.2
    entry = sim.c.get("/_sim/requests", params={"route": "me"}).json()[-1]
    assert entry["status"] == 200


def test_unsimulated_backend_routes_fail_in_upstream_shape(sim: Sim) -> None:
    at = sim.account()["access_token"]
    r = sim.get("/project_y/not_simulated_yet", at)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"


def test_account_update_and_bounded_log() -> None:
    with make_client(log_limit=3) as client:
        s = Sim(client)
        acct = s.account(username=None)
        at = acct["access_token"]
        assert s.get("/me", at).json()["username"] is None
        r = client.patch(f"/_sim/accounts/{acct['account_id']}", json={"quota": 0, "username": "neo"})
        assert r.status_code == 200 and r.json()["quota_remaining"] == 0
        assert s.get("/me", at).json()["username"] == "neo"
        assert _error(s.create(at))["code"] == "rate_limit_reached"
        for _ in range(3):
            s.get("/nf/check", at)
        log = client.get("/_sim/requests").json()
        assert [e["seq"] for e in log] == [4, 5, 6]
        by_route = client.get("/_sim/stats").json()["requests_by_route"]
        assert by_route == {"me": 2, "nf_create": 1, "nf_check": 3}


# ----- request log, stats, reset ---------------------------------------------------------------------


def test_request_log_and_stats(sim: Sim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    sim.create(at, sentinel="sent-1")
    sim.pending(at)
    sim.drafts(at)
    log = sim.c.get("/_sim/requests").json()
    assert [e["route"] for e in log] == ["nf_create", "pending", "drafts"]
    create, poll, _ = log
    assert create["method"] == "POST" and create["path"] == "/backend/nf/create"
    assert create["account_id"] == acct["account_id"] and create["body"]["prompt"] == VIDEO["prompt"]
    assert create["headers"]["openai-sentinel-token"] == "sent-1"
    assert "openai-sentinel-token" not in poll["headers"] and poll["body"] is None
    assert log[0]["seq"] < log[1]["seq"] < log[2]["seq"] and log[0]["ts"] > 0
    since = sim.c.get("/_sim/requests", params={"since": create["seq"]}).json()
    assert [e["route"] for e in since] == ["pending", "drafts"]
    assert sim.c.get("/_sim/requests", params={"route": "pending", "account": "acct_x"}).json() == []
    stats = sim.c.get("/_sim/stats").json()
    assert stats["creates_total"] == 1 and stats["creates"] == {acct["account_id"]: 1}
    assert stats["requests_by_route"] == {"nf_create": 1, "pending": 1, "drafts": 1}


def test_reset_clears_everything(sim: Sim) -> None:
    at = sim.account()["access_token"]
    sim.task_id(at)
    sim.fault(fault="http_500", route="nf_check")
    assert sim.c.post("/_sim/reset").status_code == 200
    assert sim.get("/me", at).status_code == 401
    assert sim.c.get("/_sim/stats").json() == {
        "creates_total": 0,
        "creates": {},
        "max_in_flight": {},
        "requests_by_route": {"me": 1},
    }
    assert sim.c.get("/_sim/faults").json() == []
    assert sim.c.get("/_sim/health").json() == {"ok": True}
