"""Upstream trouble on create: retried, reconciled or moved to another account, never paid twice."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import execute, job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("faults")
    stack.add_account(email="first@example.com")
    stack.add_account(email="second@example.com")
    return stack


def _creates(stack: Stack) -> int:
    return stack.sim("GET", "/stats")["creates_total"]


def test_a_5xx_on_create_is_retried(stack: Stack) -> None:
    before = _creates(stack)
    stack.sim("POST", "/faults", json={"fault": "http_502", "route": "nf_create", "count": 1})
    video_id = stack.create_video(prompt="retry me after a bad gateway")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    assert _creates(stack) - before == 1
    attempts = job_row(stack, video_id)["attempts"]
    assert [a["error_class"] for a in attempts] == ["server_error"]


def test_a_create_that_succeeded_behind_a_500_is_adopted_not_repeated(stack: Stack) -> None:
    before = _creates(stack)
    stack.sim("POST", "/faults", json={"fault": "create_then_500", "route": "nf_create", "count": 1})
    video_id = stack.create_video(prompt="created although the answer was lost")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    assert _creates(stack) - before == 1  # the task found in pending was adopted


def test_heavy_load_cools_the_account_and_the_job_moves_on(stack: Stack) -> None:
    stack.sim("POST", "/faults", json={"fault": "heavy_load", "route": "nf_create", "count": 1})
    video_id = stack.create_video(prompt="try the other account")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    row = job_row(stack, video_id)
    assert [a["error_class"] for a in row["attempts"]] == ["heavy_load"]
    assert row["attempts"][0]["account_id"] != row["account_id"]
    accounts = stack.http.get(
        f"{stack.api_url}/api/tokens", headers={"Authorization": f"Bearer {stack.admin_key}"}
    ).json()["data"]
    cooled = [a for a in accounts if a["cooldown_reason"]]
    assert len(cooled) == 1 and cooled[0]["id"] != row["account_id"]
    assert cooled[0]["enabled"] is True and cooled[0]["consecutive_errors"] == 0  # not the account's fault


def test_an_account_whose_secret_cannot_be_read_is_disabled_not_fatal(stack: Stack) -> None:
    broken = stack.add_account(email="sealed-with-an-old-key@example.com")["gateway"]["id"]
    execute(
        stack,
        "UPDATE accounts SET access_token_enc = 'gAAAAA-not-ours', last_used_at = NULL WHERE id = $1",
        broken,
    )
    # Least recently used first: the broken account is tried first, then the job moves on.
    video_id = stack.create_video(prompt="skip the unreadable account")["id"]
    assert stack.wait_video(video_id)["status"] == "completed"
    attempts = job_row(stack, video_id)["attempts"]
    assert [(a["account_id"], a["error_class"]) for a in attempts] == [(broken, "secret_unreadable")]
    accounts = stack.http.get(
        f"{stack.api_url}/api/tokens", headers={"Authorization": f"Bearer {stack.admin_key}"}
    )
    assert accounts.status_code == 200
    listed = {a["id"]: a for a in accounts.json()["data"]}
    assert listed[broken]["enabled"] is False and listed[broken]["disabled_reason"] == "secret_unreadable"
    assert listed[broken]["token"].startswith("<unreadable")
