"""The sora2api query routes over HTTP: the API process against the simulator, Postgres and Redis.

No worker runs here: the reads are the API's own, with a pooled account and no generation slot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import execute
from tests.e2e.stack import Stack
from tests.infra import Services
from tests.strict import CHANNEL_KILLING_PHRASES as BANNED

pytestmark = pytest.mark.e2e

CACHE_S = 2.0
POST_KEYS = {
    "id",
    "text",
    "permalink",
    "preview_image_url",
    "posted_at",
    "like_count",
    "view_count",
    "remix_count",
    "attachment",
    "author",
}
ATTACHMENT_KEYS = {"kind", "url", "downloadable_url", "width", "height", "n_frames", "duration_seconds"}
AUTHOR_KEYS = {"user_id", "username", "display_name", "profile_picture_url"}


class World:
    """Two accounts in the pool and four public posts with known likes, in creation order."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        alice = stack.add_account(username="alice_q", email="alice@example.com")
        bob = stack.add_account(username="bob_q", email="bob@example.com")
        self.alice_gw, self.bob_gw = alice["gateway"]["id"], bob["gateway"]["id"]
        self.alice_sim, self.bob_sim = alice["sim"]["account_id"], bob["sim"]["account_id"]
        self.alice = stack.sim("GET", f"/accounts/{self.alice_sim}")
        self.bob = stack.sim("GET", f"/accounts/{self.bob_sim}")

        def seed(**fields: Any) -> str:
            return stack.sim("POST", "/posts", json=fields)["id"]

        # Oldest first; likes make the top order differ from the newest-first one.
        self.loved = seed(account=self.alice_sim, like_count=50, text="an old favourite", n_frames=450)
        self.plain = seed(account=self.bob_sim, like_count=5, text="bob's post")
        self.public = seed(like_count=1, text="from someone outside the pool")
        self.fresh = seed(
            account=self.alice_sim, like_count=20, text="alice's newest", orientation="portrait"
        )
        self.latest = [self.fresh, self.public, self.plain, self.loved]
        self.top = [self.loved, self.fresh, self.plain, self.public]


@pytest.fixture(scope="module")
def stack(services: Services) -> Iterator[Stack]:
    stack = Stack(
        services,
        "queries",
        extra_env={"QUERY_CACHE_S": str(CACHE_S), "UPSTREAM_TIMEOUT_S": "1.5"},
    )
    try:
        yield stack.start("sim", "api")
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    return World(stack)


@pytest.fixture(autouse=True)
def fresh_cache(stack: Stack) -> Iterator[None]:
    """Each test starts with no cached answers and no faults left over."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        for key in client.scan_iter(match=f"{stack.env['REDIS_PREFIX']}query:*", count=1000):
            client.delete(key)
    finally:
        client.close()
    stack.sim("DELETE", "/faults")
    yield


def get(stack: Stack, path: str, **params: Any) -> httpx.Response:
    return stack.http.get(f"{stack.api_url}{path}", params=params, headers=stack.client_headers())


def ok(stack: Stack, path: str, **params: Any) -> dict:
    response = get(stack, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def mark(stack: Stack) -> int:
    last = stack.sim("GET", "/requests", params={"limit": 1})
    return last[-1]["seq"] if last else 0


def upstream(stack: Stack, since: int, route: str | None = None) -> list[dict]:
    params: dict[str, Any] = {"since": since}
    if route:
        params["route"] = route
    return [e for e in stack.sim("GET", "/requests", params=params) if e["route"] != "health"]


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def assert_post(post: dict) -> None:
    assert set(post) == POST_KEYS
    assert isinstance(post["id"], str) and post["id"].startswith("s_")
    assert post["permalink"] == f"https://sora.chatgpt.com/p/{post['id']}"
    for key in ("text", "preview_image_url", "posted_at"):
        assert isinstance(post[key], str), key
    datetime.strptime(post["posted_at"], "%Y-%m-%dT%H:%M:%SZ")
    for key in ("like_count", "view_count", "remix_count"):
        assert type(post[key]) is int, key
    attachment = post["attachment"]
    assert set(attachment) == ATTACHMENT_KEYS
    assert attachment["kind"] == "video"
    assert isinstance(attachment["url"], str) and isinstance(attachment["downloadable_url"], str)
    for key in ("width", "height", "n_frames"):
        assert type(attachment[key]) is int, key
    assert attachment["duration_seconds"] == attachment["n_frames"] / 30
    assert set(post["author"]) == AUTHOR_KEYS
    assert all(value is None or isinstance(value, str) for value in post["author"].values())


def assert_page(page: dict, extra: dict[str, Any]) -> list[str]:
    assert set(page) == {"success", "count", "cursor", "items", *extra}
    assert page["success"] is True
    assert {key: page[key] for key in extra} == extra
    assert page["cursor"] is None or isinstance(page["cursor"], str)
    assert type(page["count"]) is int and page["count"] == len(page["items"])
    for post in page["items"]:
        assert_post(post)
    return [post["id"] for post in page["items"]]


# Feed ----------------------------------------------------------------------------------


def test_feed_newest_first_and_most_liked_first(stack: Stack, world: World) -> None:
    latest = ok(stack, "/v1/feed", limit=50, cut="nf2_latest")
    assert assert_page(latest, {"cut": "nf2_latest"}) == world.latest
    assert latest["cursor"] is None
    top = ok(stack, "/v1/feed", limit=50, cut="nf2_top")
    assert assert_page(top, {"cut": "nf2_top"}) == world.top
    assert [p["like_count"] for p in top["items"]] == [50, 20, 5, 1]

    default = ok(stack, "/v1/feed")  # limit 8, nf2_latest
    assert default["cut"] == "nf2_latest" and [p["id"] for p in default["items"]] == world.latest

    by_id = {p["id"]: p for p in latest["items"]}
    loved, fresh = by_id[world.loved], by_id[world.fresh]
    assert (loved["text"], loved["attachment"]["n_frames"], loved["attachment"]["duration_seconds"]) == (
        "an old favourite",
        450,
        15,
    )
    assert loved["author"]["user_id"] == world.alice["user_id"]
    assert loved["author"]["username"] == "alice_q"
    assert fresh["attachment"]["height"] > fresh["attachment"]["width"]  # portrait
    assert by_id[world.plain]["author"]["username"] == "bob_q"


@pytest.mark.parametrize("cut", ["nf2_latest", "nf2_top"])
def test_feed_cursor_walks_the_whole_feed(stack: Stack, world: World, cut: str) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 3, "cut": cut}
        if cursor:
            params["cursor"] = cursor
        page = ok(stack, "/v1/feed", **params)
        seen += assert_page(page, {"cut": cut})
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == (world.latest if cut == "nf2_latest" else world.top)


def test_token_id_picks_the_account_and_the_pool_goes_round(stack: Stack, world: World) -> None:
    for gateway_id, sim_id in ((world.alice_gw, world.alice_sim), (world.bob_gw, world.bob_sim)):
        since = mark(stack)
        ok(stack, "/v1/feed", limit=2, token_id=gateway_id)
        [call] = upstream(stack, since, "feed")
        assert call["account_id"] == sim_id  # the simulator knows accounts by their Bearer token

    since = mark(stack)
    for limit in (4, 5, 6, 7):
        ok(stack, "/v1/feed", limit=limit)
    used = [call["account_id"] for call in upstream(stack, since, "feed")]
    assert len(used) == 4 and set(used) == {world.alice_sim, world.bob_sim}
    assert used[0] != used[1] and used[1] != used[2]  # least recently used first, no lease taken


# Caching -------------------------------------------------------------------------------


def _routes(world: World) -> list[tuple[str, dict, str]]:
    return [
        ("/v1/feed", {"limit": 3, "cut": "nf2_top"}, "feed"),
        ("/v1/profiles/alice_q", {}, "profile_get"),
        (f"/v1/users/{world.bob['user_id']}/feed", {"limit": 2}, "profile_feed"),
        ("/v1/characters/search", {"username": "q", "intent": "users"}, "search_mentions"),
        ("/v1/invite-codes", {"token_id": world.bob_gw}, "invite_mine"),
        (f"/v1/tokens/{world.alice_gw}/profile-feed", {"limit": 2}, "profile_feed"),
    ]


def test_a_second_identical_call_is_answered_from_the_cache(stack: Stack, world: World) -> None:
    for path, params, route in _routes(world):
        since = mark(stack)
        first = ok(stack, path, **params)
        assert ok(stack, path, **params) == first, path
        assert len(upstream(stack, since, route)) == 1, path
        if "limit" in params:  # other parameters are another answer
            ok(stack, path, **{**params, "limit": params["limit"] + 1})
            assert len(upstream(stack, since, route)) == 2, path


def test_cached_answers_expire(stack: Stack, world: World) -> None:
    since = mark(stack)
    ok(stack, "/v1/profiles/bob_q")
    ok(stack, "/v1/profiles/bob_q")
    assert len(upstream(stack, since, "profile_get")) == 1
    time.sleep(CACHE_S + 0.3)
    ok(stack, "/v1/profiles/bob_q")
    assert len(upstream(stack, since, "profile_get")) == 2


def test_errors_are_not_cached(stack: Stack, world: World) -> None:
    stack.sim("POST", "/faults", json={"fault": "http_500", "route": "feed", "count": 1})
    error = error_of(get(stack, "/v1/feed", limit=9), 502, "upstream_error")
    assert error["type"] == "server_error"
    assert [p["id"] for p in ok(stack, "/v1/feed", limit=9)["items"]] == world.latest


# Profiles, user feeds, search, invite codes, an account's own posts ------------------------------


def test_profile_by_username(stack: Stack, world: World) -> None:
    answer = ok(stack, "/v1/profiles/alice_q")
    assert set(answer) == {"success", "profile"} and answer["success"] is True
    profile = answer["profile"]
    assert set(profile) == {"user_id", "username", "display_name", "profile_picture_url", "follower_count"}
    assert (profile["user_id"], profile["username"]) == (world.alice["user_id"], "alice_q")
    assert isinstance(profile["display_name"], str) and type(profile["follower_count"]) is int
    assert profile["profile_picture_url"] is None
    assert ok(stack, "/v1/profiles/@bob_q")["profile"]["user_id"] == world.bob["user_id"]

    error_of(get(stack, "/v1/profiles/nobody_here"), 404, "not_found")


def test_user_feed_has_that_users_posts_only(stack: Stack, world: World) -> None:
    user_id = world.alice["user_id"]
    page = ok(stack, f"/v1/users/{user_id}/feed", limit=10)
    assert assert_page(page, {"user_id": user_id}) == [world.fresh, world.loved]
    first = ok(stack, f"/v1/users/{user_id}/feed", limit=1)
    assert [p["id"] for p in first["items"]] == [world.fresh] and first["cursor"]
    rest = ok(stack, f"/v1/users/{user_id}/feed", limit=1, cursor=first["cursor"])
    assert [p["id"] for p in rest["items"]] == [world.loved]

    since = mark(stack)
    ok(stack, f"/v1/users/{user_id}/feed", limit=3)
    [call] = upstream(stack, since, "profile_feed")
    assert call["path"].endswith(f"/project_y/profile_feed/{user_id}")
    assert "cut=nf2" in call["query"].split("&")

    error_of(get(stack, "/v1/users/user-doesnotexist/feed"), 404, "not_found")


def test_character_search(stack: Stack, world: World) -> None:
    answer = ok(stack, "/v1/characters/search", username="alice", intent="users", limit=5)
    assert set(answer) == {"success", "query", "count", "results"}
    assert (answer["success"], answer["query"], answer["count"]) == (True, "alice", 1)
    [result] = answer["results"]
    assert result == {
        "user_id": world.alice["user_id"],
        "username": "alice_q",
        "display_name": result["display_name"],
        "profile_picture_url": None,
        "can_cameo": False,
        "token": f"<@{world.alice['user_id']}>",
    }
    assert isinstance(result["display_name"], str)

    both = ok(stack, "/v1/characters/search", username="_q")
    assert [r["username"] for r in both["results"]] == ["alice_q", "bob_q"]
    assert ok(stack, "/v1/characters/search", username="_q", limit=1)["count"] == 1
    cameos = ok(stack, "/v1/characters/search", username="alice", intent="cameo")
    assert (cameos["count"], cameos["results"]) == (0, [])


def test_invite_code_bootstraps_an_account_not_yet_activated(stack: Stack, world: World) -> None:
    stack.sim("PATCH", f"/accounts/{world.alice_sim}", json={"activated": False})
    since = mark(stack)
    answer = ok(stack, "/v1/invite-codes", token_id=world.alice_gw)
    assert answer == {
        "success": True,
        "invite_code": world.alice["invite_code"],
        "remaining_count": answer["total_count"],
        "total_count": answer["total_count"],
        "email": "alice@example.com",
    }
    assert type(answer["total_count"]) is int and answer["total_count"] > 0
    calls = [(c["route"], c["status"]) for c in upstream(stack, since)]
    assert calls == [("invite_mine", 401), ("bootstrap", 200), ("invite_mine", 200)]

    pooled = ok(stack, "/v1/invite-codes")
    assert pooled["email"] in ("alice@example.com", "bob@example.com")
    assert pooled["invite_code"] in (world.alice["invite_code"], world.bob["invite_code"])


def test_an_accounts_own_posts(stack: Stack, world: World) -> None:
    since = mark(stack)
    page = ok(stack, f"/v1/tokens/{world.bob_gw}/profile-feed")
    assert assert_page(page, {"token_id": world.bob_gw}) == [world.plain]
    [call] = upstream(stack, since, "profile_feed")
    assert call["path"].endswith("/project_y/profile_feed/me") and call["account_id"] == world.bob_sim
    alice = ok(stack, f"/v1/tokens/{world.alice_gw}/profile-feed", limit=1)
    assert [p["id"] for p in alice["items"]] == [world.fresh] and alice["cursor"]

    error_of(get(stack, "/v1/tokens/424242/profile-feed"), 404, "token_not_found")


# Refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/v1/feed", {"limit": 0}, "limit"),
        ("/v1/feed", {"limit": 51}, "limit"),
        ("/v1/feed", {"limit": "eight"}, "limit"),
        ("/v1/feed", {"cut": "nf2_hot"}, "cut"),
        ("/v1/feed", {"token_id": "first"}, "token_id"),
        ("/v1/feed", {"token_id": -1}, "token_id"),
        ("/v1/users/user-x/feed", {"limit": 100}, "limit"),
        ("/v1/characters/search", {"username": "a", "intent": "everyone"}, "intent"),
        ("/v1/characters/search", {"username": "a", "limit": 0}, "limit"),
        ("/v1/tokens/first/profile-feed", {}, "token_id"),
        ("/v1/tokens/1/profile-feed", {"limit": 99}, "limit"),
        ("/v1/invite-codes", {"token_id": "x"}, "token_id"),
    ],
)
def test_bad_parameters_are_a_400(stack: Stack, world: World, path: str, params: dict, param: str) -> None:
    since = mark(stack)
    error = error_of(get(stack, path, **params), 400, "invalid_value")
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert upstream(stack, since) == []


def test_search_needs_a_username(stack: Stack, world: World) -> None:
    error = error_of(get(stack, "/v1/characters/search"), 400, "missing_required_parameter")
    assert error["param"] == "username"


def test_unknown_token_id_is_a_404(stack: Stack, world: World) -> None:
    for path in ("/v1/feed", "/v1/profiles/alice_q", "/v1/invite-codes", "/v1/characters/search"):
        error = error_of(get(stack, path, token_id=99999, username="a"), 404, "token_not_found")
        assert error["param"] == "token_id"


def test_a_query_needs_a_client_key(stack: Stack, world: World) -> None:
    response = stack.http.get(f"{stack.api_url}/v1/feed", headers={"Authorization": "Bearer wrong"})
    error_of(response, 401, "invalid_api_key")
    response = stack.http.get(
        f"{stack.api_url}/v1/stats", headers={"Authorization": f"Bearer {stack.admin_key}"}
    )
    assert response.status_code == 401


def test_disabled_accounts_are_refused_and_an_empty_pool_is_a_503(stack: Stack, world: World) -> None:
    execute(
        stack, "UPDATE accounts SET enabled = false, disabled_reason = 'manual' WHERE id = $1", world.bob_gw
    )
    try:
        error = error_of(get(stack, "/v1/feed", token_id=world.bob_gw), 409, "account_disabled")
        assert error["param"] == "token_id"
        since = mark(stack)
        for limit in (2, 3, 4):  # the pool keeps reading with the account left
            ok(stack, "/v1/feed", limit=limit)
        assert {c["account_id"] for c in upstream(stack, since, "feed")} == {world.alice_sim}

        execute(stack, "UPDATE accounts SET enabled = false WHERE id = $1", world.alice_gw)
        since = mark(stack)
        for path in ("/v1/feed", "/v1/profiles/alice_q", "/v1/invite-codes"):
            error = error_of(get(stack, path), 503, "no_available_account")
            assert not any(word in error["message"].lower() for word in BANNED), error["message"]
        assert upstream(stack, since) == []
    finally:
        execute(stack, "UPDATE accounts SET enabled = true, disabled_reason = NULL")


def test_upstream_failures_are_a_502_refusals_a_400_unknown_items_a_404(stack: Stack, world: World) -> None:
    for fault, params in (("token_invalidated", {}), ("http_503", {}), ("slow", {"delay_s": 3})):
        stack.sim(
            "POST", "/faults", json={"fault": fault, "route": "profile_get", "count": 1, "params": params}
        )
        error = error_of(get(stack, "/v1/profiles/bob_q"), 502, "upstream_error")
        assert not any(word in error["message"].lower() for word in BANNED), error["message"]
    error = error_of(
        get(stack, "/v1/feed", cursor="not-a-cursor-the-upstream-made"), 400, "upstream_rejected"
    )
    assert error["type"] == "invalid_request_error"
    error_of(get(stack, "/v1/users/user-doesnotexist/feed", token_id=world.bob_gw), 404, "not_found")
    # Reading with an account never disables it; only the job engine judges accounts.
    assert ok(stack, "/v1/profiles/bob_q")["profile"]["username"] == "bob_q"


# Stats ------------------------------------------------------------------------------------------


def test_stats_count_from_the_accounts_table(stack: Stack, world: World) -> None:
    today = datetime.now(UTC).date()
    execute(
        stack,
        "UPDATE accounts SET today_date = $2, today_video_count = 2, today_image_count = 1,"
        " today_error_count = 1, video_count = 10, image_count = 4, error_count = 3 WHERE id = $1",
        world.alice_gw,
        today,
    )
    # Bob's today_* counts are from yesterday, so they count in the totals only; he is cooling down.
    execute(
        stack,
        "UPDATE accounts SET today_date = $2, today_video_count = 5, today_image_count = 5,"
        " today_error_count = 5, video_count = 1, image_count = 1, error_count = 1,"
        " cooldown_until = now() + interval '1 hour' WHERE id = $1",
        world.bob_gw,
        today - timedelta(days=1),
    )
    try:
        since = mark(stack)
        answer = ok(stack, "/v1/stats")
        assert answer == {
            "success": True,
            "stats": {
                "total_tokens": 2,
                "active_tokens": 1,
                "today_images": 1,
                "total_images": 5,
                "today_videos": 2,
                "total_videos": 11,
                "today_errors": 1,
                "total_errors": 4,
            },
        }
        assert upstream(stack, since) == []  # the table only, never the upstream

        execute(stack, "UPDATE accounts SET cooldown_until = NULL, expires_at = now() - interval '1 minute'")
        assert ok(stack, "/v1/stats")["stats"]["active_tokens"] == 0  # not cached: always the table
        execute(stack, "UPDATE accounts SET expires_at = NULL")
        execute(stack, "UPDATE accounts SET enabled = false WHERE id = $1", world.bob_gw)
        assert ok(stack, "/v1/stats")["stats"]["active_tokens"] == 1
    finally:
        execute(stack, "UPDATE accounts SET enabled = true, cooldown_until = NULL, expires_at = NULL")
