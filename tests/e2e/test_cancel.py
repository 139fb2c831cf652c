"""Operators see every job and can cancel one: polling stops, the slot is free at once, the job says why."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("cancel")
    stack.add_account(email="one-slot@example.com", video_concurrency=1)
    return stack


def admin(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return stack.http.request(
        method, f"{stack.api_url}/api{path}", headers={"Authorization": f"Bearer {stack.admin_key}"}, **kwargs
    )


def test_cancelling_a_running_job_frees_its_slot_and_stops_it(stack: Stack) -> None:
    stuck = stack.create_video(prompt="never finishes [sim:stuck]")["id"]
    stack.wait_video(stuck, until=("in_progress",))
    # The only slot is taken: the next job waits.
    waiting = stack.create_video(prompt="runs once the slot is back")["id"]
    time.sleep(1)
    assert stack.get_video(waiting)["status"] == "queued"

    # The owner cannot delete a running video (the OpenAI route's contract); an operator can cancel it.
    refused = stack.http.delete(f"{stack.api_url}/v1/videos/{stuck}", headers=stack.client_headers())
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "video_not_finished"
    cancelled = admin(stack, "POST", f"/jobs/{stuck}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "failed" and cancelled.json()["error_code"] == "cancelled"

    video = stack.get_video(stuck)
    assert video["status"] == "failed" and video["error"]["code"] == "cancelled"
    assert stack.wait_video(waiting)["status"] == "completed"
    # It stays cancelled: the polls that followed the other job did not touch it.
    row = job_row(stack, stuck)
    assert row["state"] == "failed" and row["error_code"] == "cancelled"
    again = admin(stack, "POST", f"/jobs/{stuck}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    # Now that it has ended the owner may delete it.
    deleted = stack.http.delete(f"{stack.api_url}/v1/videos/{stuck}", headers=stack.client_headers())
    assert deleted.status_code == 200


def test_cancelling_a_queued_job(stack: Stack) -> None:
    blocker = stack.create_video(prompt="holds the slot [sim:stuck]")["id"]
    stack.wait_video(blocker, until=("in_progress",))
    queued = stack.create_video(prompt="cancelled before it starts")["id"]
    assert admin(stack, "POST", f"/jobs/{queued}/cancel").json()["error_code"] == "cancelled"
    assert admin(stack, "POST", f"/jobs/{blocker}/cancel").status_code == 200
    follow = stack.create_video(prompt="the slot is free again")["id"]
    assert stack.wait_video(follow)["status"] == "completed"
    creates = [
        r
        for r in stack.sim("GET", "/requests", params={"route": "nf_create"})
        if "cancelled before" in str(r)
    ]
    assert creates == []  # a job cancelled while queued never reaches the upstream


def test_operators_list_every_job_newest_first(stack: Stack) -> None:
    listed = admin(stack, "GET", "/jobs", params={"limit": 2})
    assert listed.status_code == 200
    page = listed.json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    first, second = page["data"]
    assert first["created_at"] >= second["created_at"]
    following = admin(stack, "GET", "/jobs", params={"limit": 2, "before": page["next_before"]}).json()
    assert not {j["id"] for j in following["data"]} & {first["id"], second["id"]}

    failed = admin(stack, "GET", "/jobs", params={"status": "failed"}).json()["data"]
    assert failed and all(j["status"] == "failed" for j in failed)
    assert {j["error_code"] for j in failed} == {"cancelled"}
    running = admin(stack, "GET", "/jobs", params={"status": "running", "kind": "video"}).json()["data"]
    assert all(j["state"] == "running" for j in running)
    detail = admin(stack, "GET", f"/jobs/{first['id']}").json()
    assert detail["id"] == first["id"] and "attempts" in detail and detail["owner"]

    assert admin(stack, "GET", "/jobs", params={"status": "lost"}).status_code == 400
    assert admin(stack, "GET", "/jobs/video_missing").status_code == 404
    assert admin(stack, "POST", "/jobs/video_missing/cancel").status_code == 404
    forbidden = stack.http.get(f"{stack.api_url}/api/jobs", headers=stack.client_headers())
    assert forbidden.status_code == 403
