"""The account pool's life: imports of every token kind, refresh, quota cooldowns, bad tokens, selection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import execute, job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

SORA_ANDROID = "app_OHnYmJt5u1XEdhDUx0ig1ziv"


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    # Beat looks at due refreshes and ended quota cooldowns every second here.
    return make_stack("pool", extra_env={"ACCOUNT_CHECK_INTERVAL_S": "1", "REFRESH_RETRY_S": "2"})


def admin(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return stack.http.request(
        method, f"{stack.api_url}/api{path}", headers={"Authorization": f"Bearer {stack.admin_key}"}, **kwargs
    )


def account(stack: Stack, account_id: int) -> dict:
    response = admin(stack, "GET", f"/tokens/{account_id}")
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.25)


def only(stack: Stack, *keep: int) -> None:
    """Disables every other account, so a test knows which accounts its jobs can land on."""
    for listed in admin(stack, "GET", "/tokens").json()["data"]:
        if listed["id"] not in keep and listed["enabled"]:
            assert admin(stack, "POST", f"/tokens/{listed['id']}/disable").status_code == 200


def import_tokens(stack: Stack, **body: Any) -> dict:
    response = admin(stack, "POST", "/tokens/import", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_import_access_session_and_refresh_tokens(stack: Stack) -> None:
    by_at = stack.sim("POST", "/accounts", json={"email": "import-at@example.com"})
    by_st = stack.sim("POST", "/accounts", json={"email": "import-st@example.com"})
    by_rt = stack.sim("POST", "/accounts", json={"email": "import-rt@example.com"})

    # Access tokens are recognised as JWTs; blank lines are ignored; a repeat is reported, not added twice.
    result = import_tokens(stack, tokens=f"{by_at['access_token']}\n\n{by_at['access_token']}\n")
    assert [(r["line"], r["kind"], r["result"]) for r in result["results"]] == [
        (1, "at", "imported"),
        (3, "at", "duplicate"),
    ]
    assert result["imported"] == 1 and result["duplicates"] == 1

    result = import_tokens(stack, tokens=[by_st["session_token"]], kind="st", proxy_url=None)
    assert result["results"][0]["result"] == "imported", result
    st_account = account(stack, result["results"][0]["account_id"])
    assert st_account["email"] == "import-st@example.com"
    assert st_account["st"] and st_account["st"] != by_st["session_token"]  # masked
    assert st_account["status"] == "active" and st_account["expires_at"]

    result = import_tokens(stack, tokens=by_rt["refresh_token"], kind="rt", client_id=by_rt["client_id"])
    assert result["results"][0]["result"] == "imported", result
    rt_account = account(stack, result["results"][0]["account_id"])
    assert rt_account["email"] == "import-rt@example.com" and rt_account["client_id"] == by_rt["client_id"]

    # The same account imported again by another of its tokens gets the new tokens, not a second row.
    first_id = import_tokens(stack, tokens=by_at["access_token"])["results"][0]
    assert first_id["result"] == "duplicate"
    result = import_tokens(stack, tokens=by_at["session_token"], kind="st")
    assert result["results"][0]["result"] == "updated"

    listed = admin(stack, "GET", "/tokens").json()["data"]
    emails = [a["email"] for a in listed]
    assert emails.count("import-at@example.com") == 1


def test_a_refresh_token_works_only_with_its_own_client_id(stack: Stack) -> None:
    android = stack.sim("POST", "/accounts", json={"email": "android@example.com", "client_id": SORA_ANDROID})
    # Without a client id the default (ChatGPT iOS) is used, and the upstream refuses the pairing.
    refused = import_tokens(stack, tokens=android["refresh_token"], kind="rt")
    assert refused["results"][0]["result"] == "failed"
    assert "client" in refused["results"][0]["error"] or "oauth" in refused["results"][0]["error"]

    accepted = import_tokens(stack, tokens=android["refresh_token"], kind="rt", client_id=SORA_ANDROID)
    assert accepted["results"][0]["result"] == "imported", accepted
    imported = account(stack, accepted["results"][0]["account_id"])
    assert imported["client_id"] == SORA_ANDROID


def test_refresh_rotates_the_refresh_token_and_keeps_the_new_one(stack: Stack) -> None:
    seeded = stack.sim("POST", "/accounts", json={"email": "rotating@example.com", "client_id": SORA_ANDROID})
    imported = import_tokens(stack, tokens=seeded["refresh_token"], kind="rt", client_id=SORA_ANDROID)
    account_id = imported["results"][0]["account_id"]
    before = account(stack, account_id)

    # The import already spent the original refresh token (the upstream rotated it). Each refresh below
    # works only if the gateway stored the token the previous exchange returned.
    for _ in range(2):
        refreshed = admin(stack, "POST", f"/tokens/{account_id}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refreshed_at"] and refreshed.json()["refresh_error"] is None
    after = account(stack, account_id)
    assert after["rt"] != before["rt"] and after["token"] != before["token"]

    oauth = [
        r
        for r in stack.sim("GET", "/requests", params={"route": "oauth_token"})
        if (r.get("body") or {}).get("client_id") == SORA_ANDROID
    ]
    sent = [r["body"]["refresh_token"] for r in oauth if r["status"] == 200]
    assert len(sent) >= 3 and len(set(sent)) == len(sent)  # never the same refresh token twice


def test_tokens_near_expiry_are_refreshed_by_beat_and_a_failed_refresh_disables(stack: Stack) -> None:
    # Tokens that expire within the refresh window (an hour by default) are picked up by beat.
    fresh = stack.sim("POST", "/accounts", json={"email": "short-lived@example.com", "token_ttl_s": 1800})
    doomed = stack.sim("POST", "/accounts", json={"email": "doomed@example.com", "token_ttl_s": 1800})
    ids = []
    for seeded in (fresh, doomed):
        response = admin(
            stack, "POST", "/tokens", json={"token": seeded["access_token"], "st": seeded["session_token"]}
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    stack.sim("POST", f"/accounts/{doomed['account_id']}/revoke", json={"tokens": ["session"]})

    refreshed = eventually(lambda: account(stack, ids[0])["refreshed_at"], what="scheduled refresh")
    assert refreshed
    failed = eventually(
        lambda: (a := account(stack, ids[1]))["status"] == "disabled" and a, what="failed refresh disables"
    )
    assert failed["disabled_reason"] == "expired" and failed["refresh_error"]


def test_spent_quota_cools_the_account_until_its_reset(stack: Stack) -> None:
    seeded = stack.add_account(email="one-video-left@example.com", quota=1, quota_reset_s=15)
    account_id = seeded["gateway"]["id"]
    only(stack, account_id)

    video_id = stack.create_video(prompt="the last video of the window")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    cooled = eventually(
        lambda: (a := account(stack, account_id))["status"] == "cooling_down" and a, what="quota cooldown"
    )
    assert cooled["reason"] == "quota" and cooled["quota_remaining"] == 0
    assert cooled["today"]["videos"] == 1 and cooled["video_count"] == 1

    # Nothing else can take the next job, so it waits for the reset instead of failing.
    waiting = stack.create_video(prompt="after the reset")["id"]
    time.sleep(1)
    assert stack.get_video(waiting)["status"] == "queued"
    # After the reset beat reads nf/check again and lifts the cooldown.
    back = eventually(
        lambda: (a := account(stack, account_id))["cooldown_reason"] is None and a, timeout=40, what="reset"
    )
    assert back["status"] == "active" and back["quota_remaining"] > 0
    assert stack.wait_video(waiting)["status"] == "completed"
    assert job_row(stack, waiting)["account_id"] == account_id
    admin(stack, "POST", f"/tokens/{account_id}/disable")


def test_finished_videos_count_the_allowance_down_and_read_it_only_near_its_end(stack: Stack) -> None:
    seeded = stack.add_account(email="seven-videos-left@example.com", quota=7)
    account_id, sim_id = seeded["gateway"]["id"], seeded["sim"]["account_id"]
    only(stack, account_id)

    def readings() -> int:
        return len(stack.sim("GET", "/requests", params={"route": "nf_check", "account": sim_id}))

    read_at_import = readings()
    first = stack.create_video(prompt="plenty left")["id"]
    assert stack.wait_video(first)["status"] == "completed"
    eventually(lambda: account(stack, account_id)["quota_remaining"] == 6, what="the allowance counted down")
    time.sleep(1)  # a reading would follow the count at once
    assert readings() == read_at_import  # 6 left: more than the account can run at once

    second = stack.create_video(prompt="getting close")["id"]
    assert stack.wait_video(second)["status"] == "completed"
    # 5 left: close enough to the end to ask the upstream, which says the same.
    eventually(lambda: readings() == read_at_import + 1, what="an nf/check reading")
    assert account(stack, account_id)["quota_remaining"] == 5
    admin(stack, "POST", f"/tokens/{account_id}/disable")


def test_a_revoked_token_disables_its_account_and_the_job_moves_on(stack: Stack) -> None:
    bad = stack.add_account(email="revoked@example.com")
    good = stack.add_account(email="still-good@example.com")
    bad_id, good_id = bad["gateway"]["id"], good["gateway"]["id"]
    only(stack, bad_id, good_id)
    # The revoked account is the least recently used, so it is tried first.
    execute(stack, "UPDATE accounts SET last_used_at = NULL WHERE id = $1", bad_id)
    execute(stack, "UPDATE accounts SET last_used_at = now() WHERE id = $1", good_id)
    stack.sim("POST", f"/accounts/{bad['sim']['account_id']}/revoke")  # access, session and refresh

    video_id = stack.create_video(prompt="not on the revoked account")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    row = job_row(stack, video_id)
    assert [(a["account_id"], a["error_class"]) for a in row["attempts"]] == [(bad_id, "token_invalid")]
    assert row["account_id"] == good_id
    disabled = account(stack, bad_id)
    assert disabled["status"] == "disabled" and disabled["disabled_reason"] == "token_invalid"
    assert disabled["error_count"] >= 1 and disabled["last_error"] == "token_invalid"
    admin(stack, "POST", f"/tokens/{good_id}/disable")


def test_an_invalidated_access_token_is_refreshed_and_the_account_kept(stack: Stack) -> None:
    seeded = stack.add_account(email="refresh-on-401@example.com")
    account_id = seeded["gateway"]["id"]
    only(stack, account_id)
    stack.sim("POST", f"/accounts/{seeded['sim']['account_id']}/revoke", json={"tokens": ["access"]})

    video_id = stack.create_video(prompt="after a fresh token")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    row = job_row(stack, video_id)
    assert row["account_id"] == account_id
    assert [a["error_class"] for a in row["attempts"]] == ["token_invalid"]
    kept = account(stack, account_id)
    assert kept["status"] == "active" and kept["refreshed_at"] and kept["consecutive_errors"] == 0
    admin(stack, "POST", f"/tokens/{account_id}/disable")


def test_least_recently_used_accounts_take_concurrent_jobs(stack: Stack) -> None:
    ids = [stack.add_account(email=f"lru-{n}@example.com")["gateway"]["id"] for n in range(3)]
    only(stack, *ids)
    # Each account could take all three jobs (3 slots each): least recently used spreads them out.
    jobs = [stack.create_video(prompt=f"spread me {n}")["id"] for n in range(3)]
    for video_id in jobs:
        assert stack.wait_video(video_id)["status"] == "completed"
    used = sorted(job_row(stack, video_id)["account_id"] for video_id in jobs)
    assert used == sorted(ids)
    # The next job goes to the account used longest ago. Which of the three took which job depends on
    # which worker process leased first, so the test sets the order: the middle id is the oldest (neither
    # the lowest id, which breaks ties, nor the account the first job happened to take).
    for account_id, minutes_ago in zip(ids, (2, 3, 1), strict=True):
        execute(
            stack,
            "UPDATE accounts SET last_used_at = now() - make_interval(mins => $2) WHERE id = $1",
            account_id,
            minutes_ago,
        )
    follow = stack.create_video(prompt="the longest idle account")["id"]
    assert stack.wait_video(follow)["status"] == "completed"
    assert job_row(stack, follow)["account_id"] == ids[1]


def test_operator_life_cycle_routes(stack: Stack) -> None:
    seeded = stack.add_account(email="life-cycle@example.com")
    account_id = seeded["gateway"]["id"]

    patched = admin(
        stack,
        "PATCH",
        f"/tokens/{account_id}",
        json={"remark": "spare", "video_concurrency": 2, "proxy_url": None},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["remark"] == "spare" and patched.json()["slots"]["video"] == {
        "in_use": 0,
        "limit": 2,
    }
    bad = admin(stack, "PATCH", f"/tokens/{account_id}", json={"video_concurrency": 9})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "video_concurrency"
    assert admin(stack, "PATCH", f"/tokens/{account_id}", json={"plan_type": "x"}).status_code == 400

    disabled = admin(stack, "POST", f"/tokens/{account_id}/disable").json()
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "manual")
    enabled = admin(stack, "POST", f"/tokens/{account_id}/enable").json()
    assert (enabled["status"], enabled["disabled_reason"]) == ("active", None)

    tested = admin(stack, "POST", f"/tokens/{account_id}/test")
    assert tested.status_code == 200 and tested.json()["check_errors"] == {}
    stack.sim("POST", f"/accounts/{seeded['sim']['account_id']}/revoke", json={"tokens": ["access"]})
    tested = admin(stack, "POST", f"/tokens/{account_id}/test").json()
    assert tested["status"] == "disabled" and tested["disabled_reason"] == "token_invalid"
    # The session token still works: a refresh brings the account back.
    refreshed = admin(stack, "POST", f"/tokens/{account_id}/refresh")
    assert refreshed.status_code == 200, refreshed.text

    for path in (f"/tokens/{account_id}", f"/tokens/{account_id}/enable"):
        assert admin(stack, "GET" if path.endswith(str(account_id)) else "POST", path).status_code == 200
    assert admin(stack, "DELETE", f"/tokens/{account_id}").json() == {
        "id": account_id,
        "deleted": True,
        "object": "account",
    }
    missing = admin(stack, "GET", f"/tokens/{account_id}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # Secrets never leave whole.
    for listed in admin(stack, "GET", "/tokens").json()["data"]:
        for secret in ("token", "st", "rt"):
            assert listed[secret] is None or "…" in listed[secret] or listed[secret] == "****"
