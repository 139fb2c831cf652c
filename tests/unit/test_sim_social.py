"""The simulator's onboarding (invite, bootstrap, usernames), social reads (feed, profiles, search), likes,
views, and the per-account control fields (activated, quota_reset_s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.test_sim import LEAVES_PENDING_AFTER, _error, make_client
from tests.unit.test_sim_characters import CharSim

PROFILE_KEYS = {
    "user_id",
    "username",
    "display_name",
    "profile_picture_url",
    "permalink",
    "follower_count",
    "following_count",
    "post_count",
    "verified",
    "can_cameo",
    "owner_profile",
}


class SocialSim(CharSim):
    def call(self, method: str, path: str, at: str, **kw: Any) -> Any:
        return self.c.request(method, f"/backend{path}", headers=self.auth(at, None), **kw)

    def feed(self, at: str, path: str = "/project_y/feed", **params: Any) -> dict[str, Any]:
        r = self.get(path, at, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def feed_ids(self, at: str, path: str = "/project_y/feed", **params: Any) -> list[str]:
        """Every post id of a feed, following the cursor to the end."""
        ids: list[str] = []
        cursor = None
        while True:
            page = self.feed(at, path, **params, **({"cursor": cursor} if cursor else {}))
            ids += [item["post"]["id"] for item in page["items"]]
            cursor = page["cursor"]
            if cursor is None:
                return ids

    def like(self, at: str, post_id: str, kind: str = "like") -> Any:
        return self.call("POST", f"/project_y/post/{post_id}/like", at, json={"kind": kind})

    def post_detail(self, at: str, post_id: str) -> dict[str, Any]:
        r = self.get(f"/project_y/post/{post_id}", at)
        assert r.status_code == 200, r.text
        return r.json()["post"]

    def search(self, at: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get("/project_y/profile/search_mentions", at, params=params)
        assert r.status_code == 200, r.text
        return r.json()["items"]


@pytest.fixture
def sim() -> Iterator[SocialSim]:
    with make_client() as client:
        yield SocialSim(client)


# ----- onboarding ------------------------------------------------------------------------------------


def test_invite_mine_needs_bootstrap_for_unactivated_accounts(sim: SocialSim) -> None:
    acct = sim.account(activated=False)
    at = acct["access_token"]
    r = sim.get("/project_y/invite/mine", at)
    assert r.status_code == 401 and _error(r)["message"]
    control = sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()
    assert control["activated"] is False
    assert sim.get("/m/bootstrap", at).status_code == 200
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["activated"] is True
    first = sim.get("/project_y/invite/mine", at).json()
    assert set(first) == {"invite_code", "redeemed_count", "total_count"}
    assert first["redeemed_count"] == 0 and first["total_count"] > 0 and first["invite_code"]
    assert sim.get("/project_y/invite/mine", at).json() == first, "a stable code"
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["invite_code"] == first["invite_code"]

    ready = sim.account()["access_token"]
    assert sim.get("/project_y/invite/mine", ready).status_code == 200, "activated by default"
    assert sim.get("/project_y/invite/mine", ready).json()["invite_code"] != first["invite_code"]
    r = sim.c.patch(f"/_sim/accounts/{acct['account_id']}", json={"activated": False})
    assert r.status_code == 200 and r.json()["activated"] is False
    assert sim.get("/project_y/invite/mine", at).status_code == 401
    routes = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert (routes["invite_mine"], routes["bootstrap"]) == (6, 1)


def test_invite_accept(sim: SocialSim) -> None:
    owner = sim.account()
    owner_at = owner["access_token"]
    code = sim.get("/project_y/invite/mine", owner_at).json()["invite_code"]
    guest = sim.account(activated=False)
    guest_at = guest["access_token"]

    def accept(at: str, invite_code: Any) -> Any:
        return sim.call("POST", "/project_y/invite/accept", at, json={"invite_code": invite_code})

    for bad in ("NOPE00", None, ""):
        r = accept(guest_at, bad)
        assert r.status_code == 400 and _error(r)["param"] == "invite_code", bad
    assert accept(owner_at, code).status_code == 400, "not your own code"
    r = accept(guest_at, code.lower())
    assert r.status_code == 200 and r.json() == {"success": True, "already_accepted": False}
    assert accept(guest_at, code).json() == {"success": True, "already_accepted": True}
    assert sim.get("/project_y/invite/mine", owner_at).json()["redeemed_count"] == 1
    status = sim.c.get(f"/_sim/accounts/{guest['account_id']}").json()
    assert status["invite_accepted"] == code and status["activated"] is True
    total = sim.get("/project_y/invite/mine", owner_at).json()["total_count"]
    for _ in range(total - 1):
        assert accept(sim.account()["access_token"], code).status_code == 200
    r = accept(sim.account()["access_token"], code)
    assert r.status_code == 400 and _error(r)["param"] == "invite_code", "used up"


def test_username_check_and_set(sim: SocialSim) -> None:
    acct = sim.account(username=None)
    at = acct["access_token"]
    other = sim.account(username="other_user")["access_token"]
    assert sim.get("/me", at).json()["username"] is None
    assert sim.available(at, "neo.1") is True
    for bad in ("No!", "ab", "UPPER", "x" * 31):
        assert sim.available(at, bad) is False, bad
    assert sim.available(at, "other_user") is False and sim.available(at, "Other_User") is False
    r = sim.call("POST", "/project_y/profile/username/check", at, json={})
    assert r.status_code == 400 and _error(r)["param"] == "username"

    r = sim.call("POST", "/project_y/profile/username/set", at, json={"username": "neo.1"})
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["username"] == "neo.1" and set(profile) >= PROFILE_KEYS
    assert sim.get("/me", at).json()["username"] == "neo.1"
    assert sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()["username"] == "neo.1"
    assert sim.available(other, "neo.1") is False
    r = sim.call("POST", "/project_y/profile/username/set", other, json={"username": "neo.1"})
    assert r.status_code == 400 and (_error(r)["code"], _error(r)["param"]) == ("username_taken", "username")
    r = sim.call("POST", "/project_y/profile/username/set", other, json={"username": "Bad Name"})
    assert r.status_code == 400 and _error(r)["param"] == "username"
    again = sim.call("POST", "/project_y/profile/username/set", at, json={"username": "neo.1"})
    assert again.status_code == 200, "setting your own name again is fine"

    sim.character(other, "cameo_name")
    assert sim.available(at, "cameo_name") is False, "character usernames count too"
    r = sim.call("POST", "/project_y/profile/username/set", at, json={"username": "cameo_name"})
    assert _error(r)["code"] == "username_taken"


def test_account_view_and_control_fields(sim: SocialSim) -> None:
    acct = sim.account(username="viewme", quota_reset_s=30)
    status = sim.c.get(f"/_sim/accounts/{acct['account_id']}").json()
    me = sim.get("/me", acct["access_token"]).json()
    assert status["user_id"] == me["id"] and status["username"] == "viewme"
    assert status["activated"] is True and status["quota_reset_s"] == 30
    r = sim.c.patch(f"/_sim/accounts/{acct['account_id']}", json={"quota_reset_s": None})
    assert r.json()["quota_reset_s"] is None
    for bad in ({"activated": "yes"}, {"quota_reset_s": -1}, {"quota_reset_s": "soon"}):
        assert sim.c.post("/_sim/accounts", json=bad).status_code == 400, bad
        assert sim.c.patch(f"/_sim/accounts/{acct['account_id']}", json=bad).status_code == 400, bad


def test_per_account_quota_window_is_literal_seconds() -> None:
    with make_client(time_scale=0.01) as client:
        s = SocialSim(client)
        short = s.account(quota=1, quota_reset_s=30)
        normal = s.account(quota=1)
        for acct in (short, normal):
            assert s.create(acct["access_token"]).status_code == 200
        s.advance(LEAVES_PENDING_AFTER * 0.01 + 0.1)
        balance = s.get("/nf/check", short["access_token"]).json()["rate_limit_and_credit_balance"]
        assert balance["estimated_num_videos_remaining"] == 0 and balance["rate_limit_reached"] is True
        assert 28 <= balance["access_resets_in_seconds"] <= 30
        scaled = s.get("/nf/check", normal["access_token"]).json()["rate_limit_and_credit_balance"]
        assert 862 <= scaled["access_resets_in_seconds"] <= 864, "the global window is scaled"
        assert _error(s.create(short["access_token"]))["code"] == "rate_limit_reached"
        s.advance(30)
        refilled = s.get("/nf/check", short["access_token"]).json()["rate_limit_and_credit_balance"]
        assert refilled["estimated_num_videos_remaining"] == 1
        assert s.create(short["access_token"]).status_code == 200
        assert (
            s.get("/nf/check", normal["access_token"]).json()["rate_limit_and_credit_balance"][
                "estimated_num_videos_remaining"
            ]
            == 0
        )
        r = client.patch(f"/_sim/accounts/{normal['account_id']}", json={"quota_reset_s": 5})
        assert r.status_code == 200 and r.json()["quota_remaining"] == 1, "windows counted from creation"


# ----- feed ------------------------------------------------------------------------------------------


def test_feed_orders_latest_and_top_with_a_working_cursor(sim: SocialSim) -> None:
    acct = sim.account(username="poster")
    at = acct["access_token"]
    viewer = sim.account()["access_token"]
    seeded = []
    for likes in (5, 0, 9):
        seeded.append(sim.seed(like_count=likes, text=f"likes {likes}")["id"])
        sim.advance(1)
    draft = sim.draft_of(at)
    own = sim.publish(at, draft["id"]).json()["post"]["id"]
    newest_first = [own, *reversed(seeded)]

    for cut in ("nf2_latest", "nf2"):
        page = sim.feed(viewer, cut=cut, limit=2)
        assert [i["post"]["id"] for i in page["items"]] == newest_first[:2] and page["cursor"]
        rest = sim.feed(viewer, cut=cut, limit=2, cursor=page["cursor"])
        assert [i["post"]["id"] for i in rest["items"]] == newest_first[2:] and rest["cursor"] is None
    assert sim.feed_ids(viewer, cut="nf2_latest", limit=1) == newest_first
    assert sim.feed_ids(viewer) == newest_first, "default cut is nf2"
    top = [seeded[2], seeded[0], own, seeded[1]]
    assert sim.feed_ids(viewer, cut="nf2_top", limit=3) == top
    assert sim.feed(viewer, cut="nf2_top", limit=8)["cursor"] is None

    item = sim.feed(viewer, cut="nf2_latest", limit=1)["items"][0]
    assert set(item) == {"post", "profile"}
    assert item["post"] == sim.post_detail(viewer, own)
    assert item["post"]["attachments"][0]["generation_id"] == draft["id"]
    assert set(item["profile"]) >= PROFILE_KEYS and item["profile"]["username"] == "poster"
    assert item["profile"]["user_id"] == sim.get("/me", at).json()["id"]
    seeded_item = sim.feed(viewer, cut="nf2_top", limit=1)["items"][0]
    assert seeded_item["post"]["like_count"] == 9 and seeded_item["profile"]["username"] == "sora_sim"

    latest_cursor = sim.feed(viewer, cut="nf2_latest", limit=1)["cursor"]
    for params in (
        {"cut": "nf2_top", "cursor": latest_cursor},
        {"cursor": "garbage!"},
        {"cut": "nf3"},
        {"limit": 0},
    ):
        r = sim.get("/project_y/feed", viewer, params=params)
        assert r.status_code == 400 and _error(r)["param"] in ("cursor", "cut", "limit"), params

    assert sim.unpublish(at, own).status_code == 204
    assert own not in sim.feed_ids(viewer)
    assert sim.c.post("/_sim/posts", json={"like_count": -1}).status_code == 400


def test_likes_and_views(sim: SocialSim) -> None:
    at = sim.account()["access_token"]
    other = sim.account()["access_token"]
    first = sim.seed(like_count=1)["id"]
    sim.advance(1)
    second = sim.seed(like_count=1, view_count=4)["id"]
    assert sim.c.get(f"/_sim/posts/{second}").json()["view_count"] == 4
    assert sim.feed_ids(at, cut="nf2_top") == [second, first], "a tie goes to the newest"

    r = sim.like(at, first)
    assert r.status_code == 200 and r.json() == {"post_id": first, "liked": True, "like_count": 2}
    assert sim.like(at, first).json()["like_count"] == 2, "liking twice counts once"
    assert sim.like(other, first).json()["like_count"] == 3
    assert sim.post_detail(at, first)["like_count"] == 3
    assert sim.feed_ids(at, cut="nf2_top") == [first, second]
    assert sim.like(other, first, "unlike").json() == {"post_id": first, "liked": False, "like_count": 2}
    assert sim.like(other, second, "unlike").json()["like_count"] == 1, "unliking without a like does nothing"
    assert sim.c.get(f"/_sim/posts/{first}").json()["like_count"] == 2
    for post_id, kind, status in ((first, "love", 400), ("s_" + "0" * 32, "like", 404)):
        assert sim.like(at, post_id, kind).status_code == status

    views = {
        "rich_views": {"views": [{"post_id": first}, {"post_id": first}, {"id": second}, {"x": 1}, "s_x"]}
    }
    r = sim.call("POST", "/project_y/viewed", at, json=views)
    assert r.status_code == 200
    assert sim.post_detail(at, first)["view_count"] == 2 and sim.post_detail(at, second)["view_count"] == 5
    for bad in ({}, {"rich_views": {"views": "x"}}, [1]):
        assert sim.call("POST", "/project_y/viewed", at, json=bad).status_code == 400, bad
    routes = sim.c.get("/_sim/stats").json()["requests_by_route"]
    assert routes["post_like"] == 7 and routes["viewed"] == 4


def test_profile_feed(sim: SocialSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    viewer = sim.account()["access_token"]
    user_id = sim.get("/me", at).json()["id"]
    draft = sim.draft_of(at)
    mine = []
    for i in range(3):
        mine.append(sim.publish(at, draft["id"], post_text=str(i)).json()["post"]["id"])
        sim.advance(1)
    sim.seed()
    expected = list(reversed(mine))
    assert sim.feed_ids(viewer, f"/project_y/profile_feed/{user_id}", limit=2, cut="nf2") == expected
    assert sim.feed_ids(at, "/project_y/profile_feed/me", limit=1) == expected
    page = sim.feed(viewer, f"/project_y/profile_feed/{user_id}", limit=8)
    assert page["cursor"] is None and all(i["profile"]["user_id"] == user_id for i in page["items"])
    assert sim.feed(viewer, "/project_y/profile_feed/me")["items"] == []
    r = sim.get("/project_y/profile_feed/user-nobody", viewer)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"

    character = sim.character(at, "feed_star")
    featured = sim.draft_of(at, prompt="@feed_star dances")
    featured_post = sim.publish(at, featured["id"]).json()["post"]["id"]
    assert sim.feed_ids(viewer, f"/project_y/profile_feed/{character['character_id']}") == [featured_post]
    assert sim.delete_character(at, character["character_id"]).status_code == 204
    assert sim.get(f"/project_y/profile_feed/{character['character_id']}", viewer).status_code == 404


# ----- profiles and search ---------------------------------------------------------------------------


def test_profile_by_username(sim: SocialSim) -> None:
    acct = sim.account(username="profile.owner")
    at = acct["access_token"]
    viewer = sim.account()["access_token"]
    sim.seed(account=acct["account_id"])
    r = sim.get("/project_y/profile/username/profile.owner", viewer)
    assert r.status_code == 200, r.text
    profile = r.json()
    assert set(profile) >= PROFILE_KEYS
    assert profile["user_id"] == sim.get("/me", at).json()["id"] and profile["post_count"] == 1
    assert profile["permalink"].endswith("/profile.owner") and profile["can_cameo"] is False
    assert profile["owner_profile"] is None and profile["verified"] is False
    r = sim.get("/project_y/profile/username/nobody_at_all", viewer)
    assert r.status_code == 404 and _error(r)["code"] == "not_found"

    character = sim.character(at, "owned.cameo", visibility=None)
    cameo = sim.get("/project_y/profile/username/owned.cameo", at).json()
    assert set(cameo) >= PROFILE_KEYS
    assert cameo["user_id"] == character["character_id"] and cameo["can_cameo"] is True
    assert cameo["owner_profile"]["username"] == "profile.owner"
    assert sim.fetch(cameo["profile_picture_url"]).headers["content-type"] == "image/webp"
    private = sim.get("/project_y/profile/username/owned.cameo", viewer).json()
    assert private["can_cameo"] is False, "private: only its owner may cameo it"
    sim.update(at, character["cameo_id"], visibility="public")
    assert sim.get("/project_y/profile/username/owned.cameo", viewer).json()["can_cameo"] is True

    sim.account(username="check")
    checked = sim.get("/project_y/profile/username/check", viewer)
    assert checked.status_code == 200 and checked.json()["username"] == "check", "not the POST route"


def test_search_mentions(sim: SocialSim) -> None:
    acct = sim.account(username="zed_finder")
    at = acct["access_token"]
    other = sim.account(username="finder_two")["access_token"]
    sim.account(username="unrelated")
    users = sim.search(at, username="finder", intent="users", limit=10)
    assert [i["profile"]["username"] for i in users] == ["finder_two", "zed_finder"], "prefix matches first"
    assert all(set(i["profile"]) >= PROFILE_KEYS for i in users)
    assert [i["profile"]["username"] for i in sim.search(at, username="finder", intent="users", limit=1)] == [
        "finder_two"
    ]

    mine_private = sim.character(at, "finder.mine", visibility=None)
    theirs_public = sim.character(other, "finder.public")
    sim.character(other, "finder.hidden", visibility="private")
    found = sim.search(at, username="finder.", intent="cameo")
    assert [i["profile"]["username"] for i in found] == ["finder.mine", "finder.public"]
    by_name = {i["profile"]["username"]: i for i in found}
    item = by_name["finder.public"]
    assert item["token"] == f"<@{theirs_public['character_id']}>"
    assert by_name["finder.mine"]["token"] == f"<@{mine_private['character_id']}>"
    profile = item["profile"]
    assert profile["can_cameo"] is True and profile["user_id"] == theirs_public["character_id"]
    assert profile["owner_profile"]["username"] == "finder_two"
    assert profile["profile_picture_url"] and profile["permalink"].endswith("/finder.public")
    assert len(sim.search(other, username="finder.", intent="cameo")) == 2, "their private one, not mine"
    assert sim.search(at, username="@finder.pub", intent="cameo")[0]["profile"]["username"] == "finder.public"
    assert sim.get("/project_y/profile/search_mentions", at, params={"intent": "groups"}).status_code == 400


def test_social_routes_need_a_bearer(sim: SocialSim) -> None:
    for method, path in (
        ("GET", "/project_y/invite/mine"),
        ("GET", "/m/bootstrap"),
        ("POST", "/project_y/invite/accept"),
        ("POST", "/project_y/profile/username/check"),
        ("POST", "/project_y/profile/username/set"),
        ("GET", "/project_y/feed"),
        ("GET", "/project_y/profile_feed/me"),
        ("GET", "/project_y/profile/username/someone"),
        ("GET", "/project_y/profile/search_mentions"),
        ("POST", "/project_y/viewed"),
        ("POST", "/project_y/post/s_x/like"),
    ):
        r = sim.c.request(method, f"/backend{path}")
        assert r.status_code == 401 and _error(r)["code"] == "token_invalidated", path


def test_faults_apply_to_the_new_routes(sim: SocialSim) -> None:
    acct = sim.account()
    at = acct["access_token"]
    sim.fault(fault="http_502", route="feed", count=1)
    sim.fault(fault="heavy_load", route="invite_mine", account=acct["account_id"], count=1)
    assert sim.get("/project_y/feed", at).status_code == 502
    assert sim.get("/project_y/feed", at).status_code == 200
    r = sim.get("/project_y/invite/mine", at)
    assert r.status_code == 429 and _error(r)["code"] == "heavy_load"
    assert sim.get("/project_y/invite/mine", at).status_code == 200
