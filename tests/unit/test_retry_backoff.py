"""The wait between a job's create attempts: exponential with jitter, capped, upstream's retry-after first."""

from __future__ import annotations

import random

import pytest

from worker.engine.attempts import backoff


def test_grows_exponentially_within_the_jitter_band() -> None:
    random.seed(7)
    for attempt in range(1, 6):
        samples = [backoff(attempt, 2.0, 1000.0) for _ in range(200)]
        middle = 2.0 * 2 ** (attempt - 1)
        assert all(0.5 * middle <= s <= 1.5 * middle for s in samples)
        assert len({round(s, 6) for s in samples}) > 100  # jittered, not one fixed delay


def test_never_more_than_the_cap() -> None:
    assert all(backoff(n, 2.0, 60.0) <= 60.0 for n in range(1, 30) for _ in range(20))
    assert backoff(40, 15.0, 0.5) <= 0.5


@pytest.mark.parametrize(("retry_after", "expected"), [(30.0, 30.0), (0.0, 0.0), (500.0, 60.0)])
def test_upstream_retry_after_wins_but_is_capped(retry_after: float, expected: float) -> None:
    assert backoff(3, 2.0, 60.0, retry_after) == expected
