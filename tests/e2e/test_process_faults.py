"""Our own failures: killed and stopped workers, a killed beat, Redis restarted, Postgres away, deadlines.

Every test counts the creates the simulator received: a fault of ours must never lose a job nor pay for it
twice. Tests that break a server start their own (PrivateRedis, PrivatePostgres), never the shared ones.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.e2e.conftest import job_row
from tests.e2e.stack import ARTIFACTS, PrivatePostgres, PrivateRedis, Stack
from worker import celery_fixes

pytestmark = pytest.mark.e2e

SOFT_SHUTDOWN_S = 3
# A video takes ~3.3 s upstream: long enough to be caught in each step.
TIME_SCALE = 0.03
# Engine timings for these stacks: a submit silent for 5 s is dead, a lost finalize is sent again after 4 s,
# a restarted beat (or one that lost Redis) takes the beat lock within a second.
FAST_RECOVERY = {"STEP_HEARTBEAT_S": "1", "REQUEUE_AFTER_S": "4", "BEAT_LOCK_TTL_S": "3"}


@pytest.fixture(scope="module")
def procs_stack(make_stack) -> Stack:
    return make_stack(
        "procs",
        time_scale=TIME_SCALE,
        extra_env={**FAST_RECOVERY, "WORKER_SOFT_SHUTDOWN_TIMEOUT_S": str(SOFT_SHUTDOWN_S)},
    )


@pytest.fixture
def stack(procs_stack: Stack) -> Stack:
    """The shared stack, with a worker and beat running whatever the test before it left."""
    for name in ("worker", "beat"):
        if name not in procs_stack.procs:
            procs_stack.start(name)
    return procs_stack


def _only_account(stack: Stack, **fields: object) -> dict:
    """A new account, the only enabled one: this test's jobs run there, and its creates are counted there."""
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    for token in stack.http.get(f"{stack.api_url}/api/tokens", headers=admin).json()["data"]:
        if token["enabled"]:
            stack.http.post(
                f"{stack.api_url}/api/tokens/{token['id']}/disable", headers=admin
            ).raise_for_status()
    return stack.add_account(**fields)


def _fault(stack: Stack, account: dict, fault: str, route: str, delay_s: float) -> None:
    """One request on ``route`` for this account is held ``delay_s`` (a create: after the task exists)."""
    stack.sim(
        "POST",
        "/faults",
        json={
            "fault": fault,
            "route": route,
            "account": account["sim"]["account_id"],
            "count": 1,
            "params": {"delay_s": delay_s},
        },
    )


def _hold(stack: Stack, account: dict, moment: str, delay_s: float) -> None:
    """Sets the fault that keeps a job's ``moment`` (submit, finalize, publish) in flight."""
    if moment == "submit":
        _fault(stack, account, "create_then_slow", "nf_create", delay_s)
    elif moment == "finalize":
        _fault(stack, account, "slow", "media", delay_s)
    elif moment == "publish":
        _fault(stack, account, "slow", "post_get", delay_s)


def _wait_for(stack: Stack, account: dict, video_id: str, moment: str) -> None:
    if moment == "submit":
        stack.wait_in_flight("nf_create", account)
    elif moment == "poll":
        stack.wait_video(video_id, until=("in_progress",))
    elif moment == "publish":
        stack.wait_in_flight("post_get", account)
    else:
        stack.wait_in_flight("media", account)


STATE_AT = {"submit": "submitting", "poll": "running", "finalize": "finalizing", "publish": "finalizing"}


@pytest.mark.parametrize("moment", ["submit", "poll", "finalize", "publish"])
def test_worker_killed_loses_nothing_and_creates_once(stack: Stack, moment: str) -> None:
    """SIGKILL while the create call is in flight (the task exists, its id never came back), between poll
    ticks, while the finished video downloads, or while its draft is published for the watermark-free
    file (the post is public until it is deleted again)."""
    account = _only_account(stack)
    _hold(stack, account, moment, delay_s=60)
    video_id = stack.create_video(
        prompt=f"survive a crash during {moment}", **({"watermark": False} if moment == "publish" else {})
    )["id"]
    _wait_for(stack, account, video_id, moment)

    stack.kill("worker")
    assert job_row(stack, video_id)["state"] == STATE_AT[moment]
    stack.start("worker")

    video = stack.wait_video(video_id, timeout=90)
    assert video["status"] == "completed", video
    assert stack.creates(account) == 1
    if moment == "publish":
        posts = stack.sim("GET", "/posts", params={"account": account["sim"]["account_id"]})
        assert len(posts) == 1 and posts[0]["deleted"], posts  # one post, public no more


def test_beat_killed_and_restarted_loses_nothing(stack: Stack) -> None:
    account = _only_account(stack)
    video_id = stack.create_video(prompt="survive beat going away")["id"]
    stack.wait_video(video_id, until=("in_progress",))
    stack.kill("beat")

    # Without beat nothing polls: the upstream finishes, and the job waits for us.
    task_id = job_row(stack, video_id)["upstream_task_id"]
    deadline = time.monotonic() + 60
    while stack.sim("GET", f"/tasks/{task_id}")["draft_at"] is None:
        assert time.monotonic() < deadline, "the upstream task never finished"
        time.sleep(0.2)
    assert stack.get_video(video_id)["status"] == "in_progress"

    stack.start("beat")
    assert stack.wait_video(video_id, timeout=60)["status"] == "completed"
    assert stack.creates(account) == 1


@pytest.mark.parametrize("moment", ["submit", "finalize"])
def test_sigterm_finishes_or_hands_back_within_the_soft_shutdown(stack: Stack, moment: str) -> None:
    """A create that answers inside the window finishes there; a download that does not is handed back
    to the broker when the window closes, and the next worker does it."""
    account = _only_account(stack)
    inside = moment == "submit"
    _hold(stack, account, moment, delay_s=SOFT_SHUTDOWN_S / 2 if inside else SOFT_SHUTDOWN_S * 4)
    video_id = stack.create_video(prompt=f"stopped politely during {moment}")["id"]
    _wait_for(stack, account, video_id, moment)

    stack.signal("worker", signal.SIGTERM)
    stack.wait_exit("worker", timeout=SOFT_SHUTDOWN_S + celery_fixes.SHUTDOWN_GRACE_S + 5)
    row = job_row(stack, video_id)
    if inside:
        assert row["state"] == "running" and row["upstream_task_id"]  # stored before the worker left
    else:
        assert row["state"] == "finalizing"
    assert "Initiating Soft Shutdown" in stack.log_text("worker", since_start=True)

    stack.start("worker")
    assert stack.wait_video(video_id, timeout=90)["status"] == "completed"
    assert stack.creates(account) == 1


def test_the_deadline_fails_a_stuck_job_and_frees_its_slot(make_stack) -> None:
    stack = make_stack(
        "deadline", time_scale=0.01, extra_env={"JOB_DEADLINE_S": "8", "SWEEP_INTERVAL_S": "1"}
    )
    account = _only_account(stack, video_concurrency=1)
    stuck_id = stack.create_video(prompt="never finishes [sim:stuck]")["id"]
    stack.wait_video(stuck_id, until=("in_progress",))

    stuck = stack.wait_video(stuck_id, timeout=60)
    assert stuck["status"] == "failed"
    assert stuck["error"]["code"] == "deadline_exceeded"
    assert "deadline" in stuck["error"]["message"]
    # The only slot is free again: the next job runs now (a lease left behind would hold it for 60 s,
    # past this job's deadline too).
    next_id = stack.create_video(prompt="runs once the stuck one is gone")["id"]
    assert stack.wait_video(next_id, timeout=60)["status"] == "completed"
    assert stack.creates(account) == 2


# Servers of our own ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(ARTIFACTS / "private-servers").start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(ARTIFACTS / "private-servers").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def own_stack(make_stack, own_redis: PrivateRedis, own_postgres: PrivatePostgres) -> Iterator[Stack]:
    """A stack on a Redis and a Postgres of its own, which its tests take away and bring back."""
    stack = make_stack(
        "own-servers",
        time_scale=TIME_SCALE,
        redis_url=own_redis.url,
        database_url=own_postgres.create_database(),
        # A third worker process stays free while a create and a download are held.
        extra_env={**FAST_RECOVERY, "WORKER_CONCURRENCY": "3"},
    )
    yield stack
    stack.stop()  # before its servers go


def _lease_members(stack: Stack, client: redis.Redis, account: dict) -> set[str]:
    key = f"{stack.env['REDIS_PREFIX']}lease:{account['gateway']['id']}:video"
    return {member.decode() for member in client.zrange(key, 0, -1)}


class EventStream(threading.Thread):
    """Follows ``GET /v1/videos/{id}/events`` in the background and keeps every event's data."""

    def __init__(self, stack: Stack, video_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{stack.api_url}/v1/videos/{video_id}/events"
        self.headers = stack.client_headers()
        self.lines: list[str] = []
        self.opened = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(120)) as response:
            for line in response.iter_lines():
                self.lines.append(line)
                if line.startswith("data:"):
                    self.opened.set()

    @property
    def events(self) -> list[dict]:
        return [json.loads(line[5:]) for line in self.lines if line.startswith("data:")]


def test_redis_restart_mid_job(own_stack: Stack, own_redis: PrivateRedis) -> None:
    """Broker, pub/sub and leases lost at once: jobs submitting, running, finalizing and queued all finish."""
    stack = own_stack
    account = _only_account(stack)
    running_id = stack.create_video(prompt="keeps running through it [sim:stuck]")["id"]
    finalizing_id = stack.create_video(prompt="downloads through it")["id"]
    stack.wait_video(running_id, until=("in_progress",))
    stack.wait_video(finalizing_id, until=("in_progress",))
    _hold(stack, account, "submit", delay_s=12)
    submitting_id = stack.create_video(prompt="creates through it")["id"]
    stack.wait_in_flight("nf_create", account)
    _hold(stack, account, "finalize", delay_s=6)
    stack.wait_in_flight("media", account)
    stream = EventStream(stack, submitting_id)
    stream.start()
    assert stream.opened.wait(30)
    client = redis.Redis.from_url(own_redis.url)

    own_redis.kill()
    # Created while Redis is down: committed, answered, but its message never reached a queue.
    queued_id = stack.create_video(prompt="sent again by the sweeper")["id"]
    own_redis.start()
    assert job_row(stack, queued_id)["state"] == "queued"

    # Leases come back from Postgres: the submitting job's from the sweeper, the running one's from its poll.
    deadline = time.monotonic() + 30
    while not {submitting_id, running_id} <= _lease_members(stack, client, account):
        assert job_row(stack, submitting_id)["state"] == "submitting", (
            "left submitting before its lease came back"
        )
        assert time.monotonic() < deadline, "leases were not rebuilt"
        time.sleep(0.2)

    for video_id in (submitting_id, finalizing_id, queued_id):
        assert stack.wait_video(video_id, timeout=90)["status"] == "completed", video_id
    assert stack.creates(account) == 4
    # The event stream opened before the restart still ends with the job's terminal event.
    stream.join(timeout=30)
    assert not stream.is_alive() and stream.events[-1]["status"] == "completed", stream.lines
    client.close()


def test_postgres_away_then_back(own_stack: Stack, own_postgres: PrivatePostgres) -> None:
    """503s while it is away (no half-made job), workers keep trying, all recovers with no process
    restarted."""
    stack = own_stack
    account = _only_account(stack)
    running_id = stack.create_video(prompt="runs while the database is away")["id"]
    stack.wait_video(running_id, until=("in_progress",))
    _hold(stack, account, "submit", delay_s=2)
    submitting_id = stack.create_video(prompt="its create answers while the database is away")["id"]
    stack.wait_in_flight("nf_create", account)
    pids = {name: proc.pid for name, proc in stack.procs.items()}

    own_postgres.stop()
    created = stack.http.post(
        f"{stack.api_url}/v1/videos", json={"prompt": "not now"}, headers=stack.client_headers()
    )
    assert created.status_code == 503, created.text
    assert set(created.json()["error"]) == {"message", "type", "param", "code"}
    assert created.json()["error"]["code"] == "service_unavailable"
    polled = stack.http.get(f"{stack.api_url}/v1/videos/{running_id}", headers=stack.client_headers())
    assert polled.status_code == 503
    with pytest.raises(json.JSONDecodeError):
        json.loads(polled.text)  # NewAPI fails a task on a JSON error; a non-JSON answer makes it retry
    # The upstream finishes both tasks meanwhile; every process keeps going.
    deadline = time.monotonic() + 60
    while any(
        task["draft_at"] is None
        for task in stack.sim("GET", "/tasks", params={"account": account["sim"]["account_id"]})
    ):
        assert time.monotonic() < deadline, "the upstream tasks never finished"
        time.sleep(0.2)
    assert all(proc.poll() is None for proc in stack.procs.values())

    own_postgres.start()
    for video_id in (running_id, submitting_id):
        assert stack.wait_video(video_id, timeout=90)["status"] == "completed", video_id
    after_id = stack.create_video(prompt="business as usual")["id"]
    assert stack.wait_video(after_id, timeout=60)["status"] == "completed"
    assert stack.creates(account) == 3  # the refused create committed nothing and created nothing
    listed = stack.http.get(f"{stack.api_url}/v1/videos?limit=100", headers=stack.client_headers()).json()
    assert "not now" not in {video["prompt"] for video in listed["data"]}
    assert {name: proc.pid for name, proc in stack.procs.items()} == pids
    assert all(proc.poll() is None for proc in stack.procs.values())
