"""A task that has left pending, with a poll interval long enough to see which part of the worker acted: the
tick's poll, the drafts rechecks its poll sends within the interval (the gap before a draft is listed), or
the finalize queue (a download tried again). And a task that never leaves the queue: how often its account
is polled.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.e2e.conftest import job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

POLL_INTERVAL_S = 3.0
RECHECKS = 2  # worker.engine.poll.GAP_RECHECKS
QUEUED_TICKS = 3  # Settings.poll_queued_ticks


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    # A grace period long enough that a lost task is still waited for while the test counts its reads.
    return make_stack(
        "finishing", poll_interval=POLL_INTERVAL_S, extra_env={"DRAFT_GRACE_S": "60", "LOG_FORMAT": "json"}
    )


def requests_of(stack: Stack, account: str) -> list[dict]:
    """The account's pending and drafts requests, in the order the simulator answered them."""
    entries = stack.sim("GET", "/requests", params={"account": account, "limit": 1000})
    return sorted((e for e in entries if e["route"] in ("pending", "drafts")), key=lambda e: e["seq"])


def running_on(stack: Stack, video_id: str, timeout: float = 30) -> str:
    """Waits until the job runs upstream; the simulator's id of the account it runs on."""
    deadline = time.monotonic() + timeout
    while (row := job_row(stack, video_id))["state"] != "running":
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    return stack.sim("GET", f"/tasks/{row['upstream_task_id']}")["account_id"]


def started_with_fault(stack: Stack, email: str, prompt: str, route: str) -> tuple[str, str]:
    """A video on a new account, running; the account's next request on ``route`` answers 500. The job's
    id and the simulator's id of its account."""
    stack.add_account(email=email)
    video_id = stack.create_video(prompt=prompt)["id"]
    account = running_on(stack, video_id)
    stack.sim("POST", "/faults", json={"fault": "http_500", "route": route, "account": account, "count": 1})
    return video_id, account


def worker_lines(stack: Stack, video_id: str, about: str) -> list[dict]:
    """The worker's JSON log lines about the job whose message holds ``about``."""
    lines = [json.loads(line) for line in stack.log_text("worker").splitlines() if video_id in line]
    return [line for line in lines if about in line["msg"]]


def test_a_draft_missing_at_the_first_look_is_found_by_a_recheck_and_downloaded_there(stack: Stack) -> None:
    # The first drafts read after the task leaves pending fails, as if the draft were not listed yet.
    video_id, account = started_with_fault(stack, "late-draft@example.com", "a kite over the dunes", "drafts")

    assert stack.wait_video(video_id)["status"] == "completed"
    seen = requests_of(stack, account)
    missed = next(i for i, e in enumerate(seen) if e["route"] == "drafts" and e["status"] == 500)
    found = seen[missed + 1]
    # The next read was the recheck's drafts, a fraction of the interval later, not the next tick's pending.
    assert found["route"] == "drafts" and found["status"] == 200, seen[missed:]
    assert found["ts"] - seen[missed]["ts"] < POLL_INTERVAL_S

    # The task that read the draft downloaded the video: no hop through the finalize queue.
    completed = worker_lines(stack, video_id, "completed")
    assert [line["task"] for line in completed] == ["poll.drafts"], completed


def test_a_task_that_never_gets_a_draft_is_rechecked_only_after_it_leaves_pending(stack: Stack) -> None:
    stack.add_account(email="lost-draft@example.com")
    video = stack.create_video(prompt="[sim:lost] a boat on a quiet lake")
    account = running_on(stack, video["id"])
    deadline = time.monotonic() + 30
    while job_row(stack, video["id"])["missing_since"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(4 * POLL_INTERVAL_S)

    seen = requests_of(stack, account)
    first = next(i for i, e in enumerate(seen) if e["route"] == "drafts")
    after = seen[first:]
    polls = sum(e["route"] == "pending" for e in after)
    drafts = sum(e["route"] == "drafts" for e in after)
    # One drafts read a tick, and the rechecks of the first time only: not RECHECKS more every tick.
    assert polls >= 3
    assert polls + RECHECKS <= drafts <= polls + 1 + RECHECKS, after
    assert job_row(stack, video["id"])["state"] == "running"


def test_a_download_that_fails_in_the_poll_is_tried_again_on_the_finalize_queue(stack: Stack) -> None:
    video_id, _ = started_with_fault(stack, "flaky-media@example.com", "a heron in the reeds", "media")

    assert stack.wait_video(video_id)["status"] == "completed"
    failed = worker_lines(stack, video_id, "download failed")
    completed = worker_lines(stack, video_id, "completed")
    assert len(failed) == 1 and failed[0]["task"] in ("poll.accounts", "poll.drafts"), failed
    assert [line["task"] for line in completed] == ["videos.finalize"], completed


def test_an_account_whose_tasks_are_all_queued_is_polled_on_every_third_tick_only(stack: Stack) -> None:
    stack.add_account(email="long-queue@example.com")
    video = stack.create_video(prompt="[sim:stuck] a lighthouse in the fog")  # queued upstream forever
    account = running_on(stack, video["id"])
    time.sleep((2 * QUEUED_TICKS + 0.5) * POLL_INTERVAL_S)

    polls = [e["ts"] for e in requests_of(stack, account) if e["route"] == "pending"]
    # Every tick would be 6 or 7 polls by now. Each poll is 2 or 3 ticks after the last (at random, so that
    # accounts started together drift apart), 3 or 4 if a poll ran late.
    assert 2 <= len(polls) <= 4, polls
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert all(
        (QUEUED_TICKS - 1.5) * POLL_INTERVAL_S < gap < (QUEUED_TICKS + 1.5) * POLL_INTERVAL_S for gap in gaps
    ), gaps
    assert job_row(stack, video["id"])["state"] == "running"
