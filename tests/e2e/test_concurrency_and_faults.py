"""The pool's limits hold across processes (killed and stopped processes: test_process_faults)."""

from __future__ import annotations

import itertools

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
