"""The operator's view of a worker: its metrics endpoint over all prefork children, and JSON logs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack, free_port

pytestmark = pytest.mark.e2e

TASK_DURATION = "sora_gateway_task_duration_seconds"


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    port = free_port()
    stack = make_stack(
        "observe",
        extra_env={
            "LOG_FORMAT": "json",
            "WORKER_METRICS_PORT": str(port),
            "WORKER_METRICS_DIR": str(tmp_path_factory.mktemp("worker-metrics")),
        },
    )
    stack.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    return stack


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def pids_with_task_durations(directory: Path) -> set[int]:
    """The prefork children that timed at least one task, read from their own metric files."""
    pids = set()
    for path in directory.glob("histogram_*.db"):
        for metric in MultiProcessCollector.merge([str(path)]):
            if metric.name == TASK_DURATION and any(
                s.name.endswith("_count") and s.value for s in metric.samples
            ):
                pids.add(int(path.stem.rsplit("_", 1)[-1]))
    return pids


def test_worker_metrics_and_json_logs_after_a_video(stack: Stack) -> None:
    account = stack.add_account(plan="chatgpt_pro")
    video = stack.create_video(prompt="an owl at dusk, observed")
    assert stack.wait_video(video["id"])["status"] == "completed"
    account_id = account["gateway"]["id"]

    # Every child counts in files of its own; the main process serves their sum.
    directory = Path(stack.env["WORKER_METRICS_DIR"])
    deadline = time.monotonic() + 30
    while len(pids_with_task_durations(directory)) < 2:
        assert time.monotonic() < deadline, f"task durations from one child only; logs in {stack.logs}"
        time.sleep(0.5)

    answer = httpx.get(stack.metrics_url, timeout=10)  # type: ignore[attr-defined]
    assert answer.status_code == 200
    found = samples(answer.text)

    upstream = {
        (labels["route"], labels["status_class"], labels["outcome"])
        for name, labels, value in found
        if name == "sora_gateway_upstream_requests_total" and value > 0
    }
    assert {("/nf/create", "2xx", "ok"), ("/nf/pending/v2", "2xx", "ok"), ("media", "2xx", "ok")} <= upstream
    assert any(
        name == "sora_gateway_upstream_request_duration_seconds_count" and labels["route"] == "/nf/create"
        for name, labels, _ in found
    )
    durations = {
        labels["task"]: value
        for name, labels, value in found
        if name == f"{TASK_DURATION}_count" and labels["outcome"] == "success"
    }
    assert durations.get("videos.submit", 0) >= 1 and durations.get("poll.accounts", 0) >= 1
    leases = {
        (labels["kind"], labels["op"])
        for name, labels, value in found
        if "lease_operations" in name and value
    }
    assert {("video", "acquired"), ("video", "released")} <= leases
    # Route templates and task names only: no id of a job or an upstream task in any label.
    for _, labels, _ in found:
        for value in labels.values():
            assert not re.search(r"video_[0-9a-f]{8}|task_|gen_|[0-9a-f]{12}", value), labels

    # JSON lines: each about this job carries its id, the task and the account's pool id; no token anywhere.
    # (Celery itself prints a few plain notices on stderr: the root warning, "Hitting Ctrl+C again".)
    text = stack.log_text("worker")
    about = [json.loads(line) for line in text.splitlines() if video["id"] in line]
    assert about, "no worker line about the job"
    for line in about:
        assert line["job_id"] == video["id"], line
        assert line["account_id"] == account_id, line
        assert line["task"] in ("videos.submit", "poll.accounts", "poll.drafts", "videos.finalize"), line
    # The poll that finds the draft downloads the video; the finalize queue is for downloads tried again.
    completed = [line for line in about if "completed" in line["msg"]]
    assert completed and completed[0]["task"] in ("poll.accounts", "poll.drafts"), completed
    assert "videos.submit" in {line["task"] for line in about}
    for secret in ("access_token", "session_token", "refresh_token"):
        value = account["sim"].get(secret)
        if value:
            assert value not in text and value[:24] not in text, secret
