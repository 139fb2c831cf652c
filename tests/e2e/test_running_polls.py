"""How often an account is polled while its video runs upstream far from its end: on one tick in two at most
(the simulator's running phase is long here, so the video stays below 80 % for the whole test)."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.e2e.conftest import job_row
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

POLL_INTERVAL_S = 1.0
TIME_SCALE = 0.03
# Running for 25 s (progress 10 % to 95 %), so the video stays below 80 % for about 20 s once it runs.
RUNNING_S = 25 / TIME_SCALE
FINISHING_PROGRESS = 80  # worker.engine.poll.FINISHING_PROGRESS


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    return make_stack(
        "running-polls",
        poll_interval=POLL_INTERVAL_S,
        time_scale=TIME_SCALE,
        extra_env={"SIM_RUNNING_S": str(RUNNING_S)},
    )


def pending_polls(stack: Stack, account: str) -> list[float]:
    entries = stack.sim("GET", "/requests", params={"account": account, "route": "pending", "limit": 1000})
    return sorted(e["ts"] for e in entries)


def test_an_account_whose_video_runs_far_from_its_end_is_polled_on_every_other_tick(stack: Stack) -> None:
    stack.add_account(email="long-run@example.com")
    video = stack.create_video(prompt="a glacier calving into the sea")
    deadline = time.monotonic() + 30
    while (row := job_row(stack, video["id"]))["upstream_status"] != "running":
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    account = stack.sim("GET", f"/tasks/{row['upstream_task_id']}")["account_id"]
    start = time.time()
    time.sleep(8.5 * POLL_INTERVAL_S)

    polls = [ts for ts in pending_polls(stack, account) if ts >= start]
    row = job_row(stack, video["id"])
    assert row["state"] == "running" and row["progress"] < FINISHING_PROGRESS, row
    # Every tick would be 8 or 9 polls. Each poll is 1 or 2 ticks after the last (the guard lapses shortly
    # before the second tick, at random), so that accounts started together do not stay polled together.
    assert 3 <= len(polls) <= 7, polls
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert all(0.5 * POLL_INTERVAL_S < gap < 3 * POLL_INTERVAL_S for gap in gaps), gaps
    assert max(gaps) > 1.5 * POLL_INTERVAL_S, gaps
