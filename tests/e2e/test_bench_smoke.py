"""The benchmark suite's smallest size, once, on the real stack: every scenario draws its chart and every job
completes. Figures are not checked; this machine's load is nobody's contract."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import SCENARIOS, main


def test_every_scenario_produces_its_figures(tmp_path: Path) -> None:
    report = main(["--smoke", "--out", str(tmp_path)])

    assert sorted(report["figures"]) == sorted(SCENARIOS)
    for chart in report["figures"].values():
        assert Path(chart).stat().st_size > 0
    assert (tmp_path / "bench-smoke.json").exists()
    results = report["results"]
    assert {row["api_processes"] for row in results["accept"]} == {1, 2}
    assert all(row["requests"] > 0 and row["errors"] == 0 for row in results["accept"])
    for run in [results["inflight"], *results["scaling"]]:
        assert run["completed"] == run["jobs"], run
        assert run["failed"] == 0
    assert [run["workers"] for run in results["scaling"]] == [1, 2]
    assert results["polling"]["naive_pending"] > 0
    assert results["streaming"]["events_delivered"] > 0
