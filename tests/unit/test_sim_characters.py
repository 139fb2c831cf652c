"""The simulator's character (cameo) flow: start, poll, avatar, finalize, visibility, delete, mentions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim import SimConfig
from tests.unit.test_sim import PUBLIC, _error, make_client
from tests.unit.test_sim_posts import DRAFT_AFTER, PNG, PostSim

MP4 = (Path(__file__).parents[2] / "sim" / "assets" / "src.mp4").read_bytes()
CAMEO_S = 10.0
CAMEO_ID = re.compile(r"cameo_[0-9a-f]{32}")
CHARACTER_ID = re.compile(r"ch_[0-9a-f]{32}")


class CharSim(PostSim):
    def upload_cameo(
        self, at: str, data: bytes | None = MP4, timestamps: str | None = "0,3", name: str = "clip.mp4"
    ) -> Any:
        files = {"file": (name, data, "video/mp4")} if data is not None else None
        fields = {"timestamps": timestamps} if timestamps is not None else {}
        if files is None:
            # Still multipart, just without a file part.
            files = {"other": ("x.txt", b"x", "text/plain")}
        return self.c.post(
            "/backend/characters/upload", files=files, data=fields, headers=self.auth(at, None)
        )

    def from_generation(self, at: str, gen_id: str, **overrides: Any) -> Any:
        body = {"generation_id": gen_id, "character_id": None, "timestamps": [0, 3], **overrides}
        return self.c.post("/backend/characters/from-generation", json=body, headers=self.auth(at, None))

    def cameo_id(self, at: str) -> str:
        r = self.upload_cameo(at)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def progress(self, at: str, cameo_id: str) -> Any:
        return self.get(f"/project_y/cameos/in_progress/{cameo_id}", at)

    def avatar_pointer(self, at: str, profile_asset_url: str) -> str:
        """Steps 3 and 4 of §4.8: download the avatar without auth and upload it back as a profile file."""
        avatar = self.fetch(profile_asset_url)
        assert avatar.status_code == 200
        files = {"file": ("profile.webp", avatar.content, "image/webp")}
        r = self.c.post(
            "/backend/project_y/file/upload",
            files=files,
            data={"use_case": "profile"},
            headers=self.auth(at, None),
        )
        assert r.status_code == 200, r.text
        return r.json()["asset_pointer"]

    def finalize(self, at: str, cameo_id: str, username: str, pointer: str, **overrides: Any) -> Any:
        body = {
            "cameo_id": cameo_id,
            "username": username,
            "display_name": None,
            "profile_asset_pointer": pointer,
            "instruction_set": None,
            "safety_instruction_set": None,
            **overrides,
        }
        return self.c.post("/backend/characters/finalize", json=body, headers=self.auth(at, None))

    def update(self, at: str, cameo_id: str, **body: Any) -> Any:
        return self.c.post(
            f"/backend/project_y/cameos/by_id/{cameo_id}/update_v2", json=body, headers=self.auth(at, None)
        )

    def delete_character(self, at: str, character_id: str) -> Any:
        return self.c.delete(f"/backend/project_y/characters/{character_id}", headers=self.auth(at, None))

    def character(self, at: str, username: str, visibility: str | None = "public") -> dict[str, Any]:
        """The whole §4.8 flow: a finished character (made public unless told otherwise)."""
        cameo_id = self.cameo_id(at)
        self.advance(CAMEO_S)
        status = self.progress(at, cameo_id).json()
        pointer = self.avatar_pointer(at, status["profile_asset_url"])
        r = self.finalize(at, cameo_id, username, pointer)
        assert r.status_code == 200, r.text
        if visibility is not None:
            assert self.update(at, cameo_id, visibility=visibility).status_code == 200
        return r.json()["character"]

    def available(self, at: str, username: Any) -> Any:
        r = self.c.post(
            "/backend/project_y/profile/username/check",
            json={"username": username},
            headers=self.auth(at, None),
        )
        assert r.status_code == 200, r.text
        return r.json()["available"]

    def control(self, key: str) -> dict[str, Any]:
        r = self.c.get(f"/_sim/characters/{key}")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def sim() -> Iterator[CharSim]:
    with make_client() as client:
        yield CharSim(client)


# ----- start, poll, avatar, finalize -----------------------------------------------------------------


def test_cameo_from_upload_processes_then_finalizes(sim: CharSim) -> None:
    acct = sim.account(username="alice")
    at = acct["access_token"]
    r = sim.upload_cameo(at)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id"} and CAMEO_ID.fullmatch(r.json()["id"])
    cameo_id = r.json()["id"]
    entry = sim.c.get("/_sim/requests", params={"route": "characters_upload"}).json()[-1]
    assert entry["body"]["timestamps"] == "0,3" and entry["body"]["file"]["size"] == len(MP4)

    for step in (0.0, CAMEO_S - 0.1):
        sim.advance(step)
        status = sim.progress(at, cameo_id).json()
        assert status["status"] == "processing", step
        assert status["status_message"] != "Completed"
        assert status["profile_asset_url"] is None and status["username_hint"] is None
    avatar_path = f"/media/cameos/{cameo_id}/profile.webp"
    assert sim.c.get(avatar_path).status_code == 404, "no avatar while processing"
    sim.advance(0.1)
    done = sim.progress(at, cameo_id).json()
    assert done["status"] == "finalized" and done["status_message"] == "Completed"
    owner, _, word = done["username_hint"].rpartition(".")
    assert owner == "alice" and re.fullmatch(r"[a-z]+", word)
    assert done["display_name_hint"] and isinstance(done["instruction_set_hint"], str)
    assert (
        done["profile_asset_url"].startswith(f"{PUBLIC}{avatar_path}?")
        and "sig=" in done["profile_asset_url"]
    )
    avatar = sim.fetch(done["profile_asset_url"])
    assert avatar.status_code == 200 and avatar.headers["content-type"] == "image/webp"
    assert avatar.content[:4] == b"RIFF" and avatar.content[8:12] == b"WEBP"
    assert sim.control(cameo_id)["status"] == "completed"

    pointer = sim.avatar_pointer(at, done["profile_asset_url"])
    username = word + "123"
    assert sim.available(at, username) is True
    r = sim.finalize(
        at, cameo_id, username, pointer, instruction_set={"value": [{"type": "text", "value": "hi"}]}
    )
    assert r.status_code == 200, r.text
    character = r.json()["character"]
    assert CHARACTER_ID.fullmatch(character["character_id"])
    assert character["cameo_id"] == cameo_id and character["username"] == username
    assert character["display_name"] == done["display_name_hint"], "null display_name takes the hint"
    assert sim.available(at, username) is False, "the username is taken now"
    assert sim.available(sim.account()["access_token"], username.upper()) is False

    info = sim.control(character["character_id"])
    assert info == sim.control(cameo_id)
    assert (info["status"], info["visibility"], info["deleted"], info["account_id"]) == (
        "finalized",
        "private",
        False,
        acct["account_id"],
    )
    assert info["profile_asset_pointer"] == pointer and info["source"] == "upload"
    assert info["instruction_set"] == {"value": [{"type": "text", "value": "hi"}]}
    listed = sim.c.get("/_sim/characters").json()
    assert [c["character_id"] for c in listed] == [character["character_id"]]
    assert sim.c.get("/_sim/characters", params={"account": "acct_nope"}).json() == []
    assert sim.c.get("/_sim/characters/cameo_nope").status_code == 404

    other = sim.character(at, "second_one", visibility=None)
    r = sim.finalize(at, sim.cameo_id(at), username, pointer)
    assert r.status_code == 400, "still processing comes first"
    sim.advance(CAMEO_S)
    third = sim.c.get("/_sim/characters").json()[-1]["cameo_id"]
    r = sim.finalize(at, third, username, pointer)
    assert r.status_code == 400 and _error(r)["code"] == "username_taken" and _error(r)["param"] == "username"
    assert other["username"] == "second_one"


def test_cameo_phase_follows_time_scale_and_setting() -> None:
    assert SimConfig.from_env({"SIM_CAMEO_S": "4"}).cameo_s == 4.0
    with make_client(time_scale=0.01) as client:
        s = CharSim(client)
        at = s.account()["access_token"]
        cameo_id = s.cameo_id(at)
        s.advance(CAMEO_S * 0.01 - 0.001)
        assert s.progress(at, cameo_id).json()["status"] == "processing"
        s.advance(0.001)
        assert s.progress(at, cameo_id).json()["status_message"] == "Completed"
    with make_client(cameo_s=2.0) as client:
        s = CharSim(client)
        at = s.account()["access_token"]
        cameo_id = s.cameo_id(at)
        s.advance(2.0)
        assert s.progress(at, cameo_id).json()["status"] == "finalized"


def test_username_hint_uses_the_email_when_there_is_no_username(sim: CharSim) -> None:
    at = sim.account(username=None, email="bob.smith@example.com")["access_token"]
    cameo_id = sim.cameo_id(at)
    sim.advance(CAMEO_S)
    hint = sim.progress(at, cameo_id).json()["username_hint"]
    assert hint.startswith("bobsmith.") and hint.count(".") == 1


def test_upload_refusals(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    for data in (PNG, b"not a video at all", None):
        r = sim.upload_cameo(at, data=data)
        assert r.status_code == 400 and _error(r)["param"] == "file", data
    for timestamps in ("3,0", "0,0.5", "0,4", "-1,1", "a,b", "0", "1,1", "0,nan", None):
        r = sim.upload_cameo(at, timestamps=timestamps)
        assert r.status_code == 400 and _error(r)["param"] == "timestamps", timestamps
    for timestamps in ("2,5", "0.5,1.5", " 1 , 3 "):
        assert sim.upload_cameo(at, timestamps=timestamps).status_code == 200, timestamps
    r = sim.c.post("/backend/characters/upload", json={"timestamps": "0,3"}, headers=sim.auth(at, None))
    assert r.status_code == 400 and _error(r)["param"] == "file"
    assert [c["timestamps"] for c in sim.c.get("/_sim/characters").json()] == [[2, 5], [0.5, 1.5], [1, 3]]


def test_cameo_from_own_finished_draft(sim: CharSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    other = sim.account()["access_token"]
    draft = sim.draft_of(at)
    r = sim.from_generation(at, draft["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == body["cameo_id"] and CAMEO_ID.fullmatch(body["id"])
    info = sim.control(body["id"])
    assert (info["source"], info["source_generation_id"], info["status"]) == (
        "generation",
        draft["id"],
        "processing",
    )
    sim.advance(CAMEO_S)
    assert sim.progress(at, body["id"]).json()["status_message"] == "Completed"

    violation = sim.draft_of(at, prompt="[sim:violation] x")
    for who, gen_id in ((other, draft["id"]), (at, "gen_01nope"), (at, violation["id"])):
        r = sim.from_generation(who, gen_id)
        assert r.status_code == 404 and _error(r)["code"] == "not_found", gen_id
    running = sim.c.app.state.sim.tasks[sim.task_id(at)].generation_id
    assert sim.from_generation(at, running).status_code == 404, "not finished yet"
    sim.advance(DRAFT_AFTER)
    assert sim.from_generation(at, running).status_code == 200
    for bad in ([3, 0], [0, 5], [0], "x", None, [True, 2]):
        r = sim.from_generation(at, draft["id"], timestamps=bad)
        assert r.status_code == 400 and _error(r)["param"] == "timestamps", bad
    assert sim.from_generation(at, draft["id"], timestamps="0,2").status_code == 200
    r = sim.from_generation(at, None)
    assert r.status_code == 400 and _error(r)["param"] == "generation_id"
    r = sim.from_generation(at, draft["id"], character_id=5)
    assert r.status_code == 400 and _error(r)["param"] == "character_id"


def test_another_accounts_cameo_and_character_are_unknown(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    character = sim.character(at, "mine_only")
    cameo_id = character["cameo_id"]
    pointer = sim.avatar_pointer(other, sim.progress(at, cameo_id).json()["profile_asset_url"])
    for r in (
        sim.progress(other, cameo_id),
        sim.progress(at, "cameo_" + "0" * 32),
        sim.finalize(other, cameo_id, "stolen_name", pointer),
        sim.update(other, cameo_id, visibility="private"),
        sim.delete_character(other, character["character_id"]),
        sim.delete_character(at, "ch_" + "0" * 32),
    ):
        assert r.status_code == 404 and _error(r)["code"] == "not_found", r.request.url
    assert sim.control(cameo_id)["visibility"] == "public" and not sim.control(cameo_id)["deleted"]


def test_finalize_refusals(sim: CharSim) -> None:
    acct = sim.account(username="taken_by_account")
    at = acct["access_token"]
    other = sim.account()["access_token"]
    cameo_id = sim.cameo_id(at)
    sim.advance(CAMEO_S)
    url = sim.progress(at, cameo_id).json()["profile_asset_url"]
    pointer = sim.avatar_pointer(at, url)
    foreign = sim.avatar_pointer(other, url)
    media_id = sim.upload_id(at)["id"]

    def refused(param: str, code: str = "invalid_request", **kw: Any) -> None:
        body = {"username": "fine_name", "pointer": pointer, **kw}
        r = sim.finalize(
            at, body.pop("cameo_id", cameo_id), body.pop("username"), body.pop("pointer"), **body
        )
        assert r.status_code == 400, (kw, r.text)
        assert (_error(r)["param"], _error(r)["code"]) == (param, code), kw

    for bad in ("ab", "Capital", "has-dash", "x" * 31, "space name", 7):
        refused("username", username=bad)
    refused("username", "username_taken", username="taken_by_account")
    for bad in (
        foreign,
        pointer.removeprefix("sediment://"),
        "sediment://" + media_id,
        "sediment://file_x",
        None,
    ):
        refused("profile_asset_pointer", pointer=bad)
    for bad in (3, {"value": "x"}, {"value": [{"type": "image", "value": "x"}]}, ["x"]):
        refused("instruction_set", instruction_set=bad)
        refused("safety_instruction_set", safety_instruction_set=bad)
    refused("display_name", display_name=5)
    refused("cameo_id", cameo_id=None)
    assert sim.c.post("/backend/characters/finalize", json=[1], headers=sim.auth(at, None)).status_code == 400
    assert sim.c.get("/_sim/characters").json()[0]["status"] == "completed", "nothing was finalized"

    r = sim.finalize(at, cameo_id, "a.b_c9", pointer, display_name="Al", safety_instruction_set="be kind")
    assert r.status_code == 200 and r.json()["character"]["display_name"] == "Al"
    refused("cameo_id", username="another_name")


def test_visibility_update_and_delete_frees_the_username(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    pending_id = sim.cameo_id(at)
    sim.advance(CAMEO_S)
    r = sim.update(at, pending_id, visibility="public")
    assert r.status_code == 400 and _error(r)["param"] == "cameo_id", "finalize comes first"

    character = sim.character(at, "free_me", visibility=None)
    cameo_id, character_id = character["cameo_id"], character["character_id"]
    r = sim.update(at, cameo_id, visibility="public", instruction_set="wave", safety_instruction_set=None)
    assert r.status_code == 200 and r.json() == {}
    info = sim.control(cameo_id)
    assert (info["visibility"], info["instruction_set"]) == ("public", "wave")
    assert sim.update(at, cameo_id, visibility="friends").status_code == 400
    assert sim.update(at, cameo_id, instruction_set=4).status_code == 400
    assert sim.update(at, cameo_id, visibility="private").status_code == 200
    assert sim.control(cameo_id)["visibility"] == "private"

    deleted = sim.delete_character(at, character_id)
    assert deleted.status_code == 204 and deleted.content == b""
    info = sim.control(character_id)
    assert info["deleted"] is True and info["deleted_at"] is not None
    assert sim.available(other, "free_me") is True
    assert sim.delete_character(at, character_id).status_code == 404
    assert sim.update(at, cameo_id, visibility="public").status_code == 404
    assert sim.character(other, "free_me")["username"] == "free_me"


# ----- mentions --------------------------------------------------------------------------------------


def test_mentions_of_characters_are_recorded_on_video_creates(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    mine = sim.character(at, "cat.star", visibility=None)
    ref = {"character_id": mine["character_id"], "username": "cat.star"}

    tid = sim.task_id(at, prompt="@cat.star meets @nobody_here and mail bob@example.com. Bye @cat.star.")
    info = sim.task(tid)
    assert info["cameo_profiles"] == [ref]
    assert info["unresolved_mentions"] == ["nobody_here"]
    assert info["prompt"].startswith("@cat.star meets"), "the prompt goes on as written"

    foreign = sim.task(sim.task_id(other, prompt="@Cat.Star on a private stage"))
    assert foreign["cameo_profiles"] == [] and foreign["unresolved_mentions"] == ["cat.star"]
    assert sim.update(at, mine["cameo_id"], visibility="public").status_code == 200
    shared = sim.task(sim.task_id(other, prompt="@Cat.Star on a public stage"))
    assert shared["cameo_profiles"] == [ref]

    sim.advance(DRAFT_AFTER)
    draft = next(d for d in sim.drafts(at)["items"] if d["task_id"] == tid)
    assert draft["creation_config"]["cameo_profiles"] == [ref]
    sb = sim.storyboard(at, prompt="Shot 1: @cat.star waves")
    assert sim.task(sb.json()["id"])["cameo_profiles"] == [ref]
    ext = sim.extend(at, draft["id"], user_prompt="then @cat.star leaves")
    assert sim.task(ext.json()["id"])["cameo_profiles"] == [ref]
    plain = sim.task(sim.task_id(at))
    assert plain["cameo_profiles"] == [] and plain["unresolved_mentions"] == []

    assert sim.delete_character(at, mine["character_id"]).status_code == 204
    gone = sim.task(sim.task_id(other, prompt="@cat.star again"))
    assert gone["cameo_profiles"] == [] and gone["unresolved_mentions"] == ["cat.star"]
    assert sim.task(tid)["cameo_profiles"] == [ref], "recorded at create time"


# ----- faults ----------------------------------------------------------------------------------------


def test_cameo_failed_fault(sim: CharSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    sim.fault(fault="cameo_failed", count=1, params={"reason": "No face found."})
    assert sim.get("/me", at).status_code == 200, "only the cameo start routes"
    assert len(sim.c.get("/_sim/faults").json()) == 1
    cameo_id = sim.cameo_id(at)
    assert sim.c.get("/_sim/faults").json() == []
    assert sim.progress(at, cameo_id).json()["status"] == "processing"
    sim.advance(CAMEO_S)
    status = sim.progress(at, cameo_id).json()
    assert (status["status"], status["status_message"]) == ("failed", "No face found.")
    assert status["profile_asset_url"] is None
    info = sim.control(cameo_id)
    assert (info["status"], info["fault"], info["status_message"]) == ("failed", "failed", "No face found.")
    assert sim.c.get(f"/media/cameos/{cameo_id}/profile.webp").status_code == 404
    healthy = sim.cameo_id(at)
    sim.advance(CAMEO_S)
    pointer = sim.avatar_pointer(at, sim.progress(at, healthy).json()["profile_asset_url"])
    r = sim.finalize(at, cameo_id, "never_made", pointer)
    assert r.status_code == 400 and _error(r)["param"] == "cameo_id"

    sim.fault(fault="cameo_failed", route="characters_from_generation", count=1)
    draft = sim.draft_of(at)
    failed = sim.from_generation(at, draft["id"]).json()["id"]
    sim.advance(CAMEO_S)
    message = sim.progress(at, failed).json()["status_message"]
    assert sim.progress(at, failed).json()["status"] == "failed" and message and message != "Completed"


def test_cameo_stuck_fault_never_completes(sim: CharSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    other = sim.account()["access_token"]
    sim.fault(fault="cameo_stuck", account=acct["account_id"], route="characters_from_generation")
    draft = sim.draft_of(at)
    stuck = sim.from_generation(at, draft["id"]).json()["id"]
    sim.advance(3600)
    status = sim.progress(at, stuck).json()
    assert status["status"] == "processing" and status["profile_asset_url"] is None
    assert sim.control(stuck)["fault"] == "stuck"
    fine = sim.cameo_id(at)
    other_fine = sim.cameo_id(other)
    sim.advance(CAMEO_S)
    assert sim.progress(at, fine).json()["status"] == "finalized", "only the faulted route"
    assert sim.progress(other, other_fine).json()["status"] == "finalized"
    r = sim.c.post("/_sim/faults", json={"fault": "cameo_stuck", "route": "me"})
    assert r.status_code == 200, "accepted, but never fires on other routes"
    assert sim.get("/me", at).status_code == 200


def test_create_then_500_on_cameo_calls(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    sim.fault(fault="create_then_500", route="characters_upload", count=1)
    assert sim.upload_cameo(at).status_code == 500
    (cameo,) = sim.c.get("/_sim/characters").json()
    sim.advance(CAMEO_S)
    assert sim.progress(at, cameo["cameo_id"]).json()["status"] == "finalized"
    sim.fault(fault="http_503", route="cameo_status", count=1)
    assert sim.progress(at, cameo["cameo_id"]).status_code == 503
    routes = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert routes["characters_upload"] == 1 and routes["cameo_status"] == 2


def test_character_routes_need_a_bearer(sim: CharSim) -> None:
    for method, path in (
        ("POST", "/characters/upload"),
        ("POST", "/characters/from-generation"),
        ("GET", "/project_y/cameos/in_progress/cameo_x"),
        ("POST", "/characters/finalize"),
        ("POST", "/project_y/cameos/by_id/cameo_x/update_v2"),
        ("DELETE", "/project_y/characters/ch_x"),
    ):
        r = sim.c.request(method, f"/backend{path}")
        assert r.status_code == 401 and _error(r)["code"] == "token_invalidated", path


def test_reset_clears_characters(sim: CharSim) -> None:
    at = sim.account()["access_token"]
    sim.character(at, "short_lived")
    assert sim.c.post("/_sim/reset").status_code == 200
    assert sim.c.get("/_sim/characters").json() == []
    assert sim.available(sim.account()["access_token"], "short_lived") is True
