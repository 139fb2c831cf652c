"""The pool's limits hold across processes, and a killed worker loses nothing."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.e2e.conftest import job_row

pytestmark = pytest.mark.e2e


def test_one_slot_means_one_after_the_other(make_stack) -> None:
    stack = make_stack("slots")
    account = stack.add_account(video_concurrency=1)
    account_id = account["sim"]["account_id"]
    ids = [stack.create_video(prompt=f"queue behind each other {i}")["id"] for i in range(3)]
    for video_id in ids:
        assert stack.wait_video(video_id, timeout=90)["status"] == "completed"

    stats = stack.sim("GET", "/stats")
    assert stats["max_in_flight"][account_id] == 1
    assert stats["creates"][account_id] == 3
    rows = sorted((job_row(stack, i) for i in ids), key=lambda r: r["submitted_at"])
    for earlier, later in itertools.pairwise(rows):
        # The next create went out only after the previous task had left the upstream's pending list.
        left = stack.sim("GET", f"/tasks/{earlier['upstream_task_id']}")["left_pending_at"]
        assert left is not None and later["submitted_at"].timestamp() >= left - 0.05


def test_worker_killed_mid_job_loses_nothing_and_creates_once(make_stack) -> None:
    # Slower simulated time, so the kill surely lands while the upstream is still working.
    stack = make_stack("kill", time_scale=0.1)
    account = stack.add_account()
    video_id = stack.create_video(prompt="survive a crash")["id"]
    stack.wait_video(video_id, until=("in_progress",), timeout=60)
    assert job_row(stack, video_id)["upstream_task_id"]

    stack.kill("worker")
    time.sleep(2)
    assert stack.get_video(video_id)["status"] == "in_progress"
    stack.start("worker")

    video = stack.wait_video(video_id, timeout=120)
    assert video["status"] == "completed"
    assert stack.sim("GET", "/stats")["creates"][account["sim"]["account_id"]] == 1
