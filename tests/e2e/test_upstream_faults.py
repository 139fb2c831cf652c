"""Every upstream failure on create, end to end: what becomes of the job, and of the account it hit.

One stack for the module. Each case gets fresh accounts and every other account is disabled, so counts
start at zero, faults are set per account, and least recently used tries ``a`` before ``b``. A case
asserts as soon as the job is placed (running, or failed): its attempts can no longer change then. Jobs
that moved on finish in the background, and the last test checks that they all complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import execute, job_row
from tests.e2e.stack import Stack
from tests.strict import CHANNEL_KILLING_PHRASES

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 5
BAN_THRESHOLD = 3
CREATE_TIMEOUT_S = 3
CONTENT_FILTER = "The prompt or input was rejected by the content filter"
PLACED = ("running", "finalizing", "completed", "failed")
SET = object()  # an expected value that only has to be present


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    return make_stack(
        "faults",
        extra_env={
            # The simulator accepts only sentinel values its provider issued.
            "SIM_STRICT_SENTINEL": "true",
            "MAX_SUBMIT_ATTEMPTS": str(MAX_ATTEMPTS),
            "ERROR_BAN_THRESHOLD": str(BAN_THRESHOLD),
            "CREATE_TIMEOUT_S": str(CREATE_TIMEOUT_S),
            # Backoff keeps its shape (exponential, jittered) but never waits long here.
            "RETRY_BACKOFF_MAX_S": "0.5",
        },
    )


@dataclass(frozen=True)
class Acct:
    id: int
    sim: str


def admin(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return stack.http.request(
        method, f"{stack.api_url}/api{path}", headers={"Authorization": f"Bearer {stack.admin_key}"}, **kwargs
    )


def token(stack: Stack, account_id: int) -> dict:
    response = admin(stack, "GET", f"/tokens/{account_id}")
    assert response.status_code == 200, response.text
    return response.json()


def fresh_accounts(stack: Stack, name: str, labels: str = "ab") -> dict[str, Acct]:
    """Clears the simulator's faults, disables every account, and adds new ones (``a`` is tried first)."""
    stack.sim("DELETE", "/faults")
    for listed in admin(stack, "GET", "/tokens").json()["data"]:
        if listed["enabled"]:
            assert admin(stack, "POST", f"/tokens/{listed['id']}/disable").status_code == 200
    made = {}
    for label in labels:
        seeded = stack.add_account(email=f"{name}-{label}@example.com")
        made[label] = Acct(id=seeded["gateway"]["id"], sim=seeded["sim"]["account_id"])
    return made


def creates_sent(stack: Stack, acct: Acct) -> int:
    """Create requests the simulator received from the account, refused ones included."""
    return len(stack.sim("GET", "/requests", params={"route": "nf_create", "account": acct.sim}))


def tasks_made(stack: Stack, acct: Acct) -> int:
    return stack.sim("GET", "/stats")["creates"].get(acct.sim, 0)


def wait_placed(stack: Stack, video_id: str, timeout: float = 60) -> dict:
    """The job's row once its submit is over: it runs upstream, or it failed."""
    deadline = time.monotonic() + timeout
    while True:
        row = job_row(stack, video_id)
        if row["state"] in PLACED:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{video_id} still {row['state']} after {timeout}s; logs in {stack.logs}")
        time.sleep(0.1)


def account_state(
    status: str = "active",
    reason: str | None = None,
    *,
    errors: int = 0,
    streak: int = 0,
    last: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """What ``GET /api/tokens/{id}`` should say about an account afterwards."""
    return {
        "status": status,
        "reason": reason,
        "error_count": errors,
        "consecutive_errors": streak,
        "last_error": last,
        **more,
    }


UNTOUCHED = account_state()


@dataclass(frozen=True)
class Case:
    id: str
    # Simulator faults; "account" names one of the case's accounts by label.
    faults: tuple[dict[str, Any], ...] = ()
    accounts: str = "ab"
    prompt: str = "a lighthouse in a storm"
    # Changes to account a on the simulator, after the gateway added it.
    sim_patch: dict[str, Any] | None = None
    status: str = "completed"
    code: str | None = None
    message: str | None = None  # a part of the failed job's message
    # (account label, error class) of every attempt recorded on the job.
    attempts: tuple[tuple[str, str], ...] = ()
    on: str = "b"  # the account the job ends on
    sent: tuple[int, ...] = (1, 1)  # create requests the simulator received per account
    made: tuple[int, ...] = (0, 1)  # tasks it created per account
    a: dict[str, Any] = field(default_factory=lambda: UNTOUCHED)
    cooldown_s: float | None = None  # how long account a cools down


def fault(name: str, account: str | None = "a", count: int | None = 1, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"fault": name, "route": "nf_create", "count": count, "account": account}
    if params:
        body["params"] = params
    return body


CASES = [
    # Refused tokens. A 401 with a working session token refreshes once and tries the same account again
    # (tests/e2e/test_account_pool.py covers refused credentials and a revoked access token).
    Case(
        "token_refused_again_after_its_refresh_disables",
        faults=(fault("token_invalidated", count=2),),
        attempts=(("a", "token_invalid"), ("a", "token_invalid")),
        sent=(2, 1),
        a=account_state(
            "disabled", "token_invalid", errors=2, streak=1, last="token_invalid", refreshed_at=SET
        ),
    ),
    Case(
        "unparseable_token_is_refreshed_and_the_same_account_kept",
        faults=(fault("unparseable_token"),),
        attempts=(("a", "token_invalid"),),
        on="a",
        sent=(2, 0),
        made=(1, 0),
        a=account_state(errors=1, last="token_invalid", refreshed_at=SET),
    ),
    # Load and limits.
    Case(
        "too_many_concurrent_tasks_is_nobodys_fault",
        faults=(fault("too_many_concurrent_tasks"),),
        attempts=(("a", "concurrency_limit"),),
        a=account_state(slots={"video": {"in_use": 0, "limit": 3}}),
    ),
    Case(
        "rate_limited_cools_down_for_retry_after",
        faults=(fault("rate_limited", retry_after=30),),
        attempts=(("a", "rate_limited"),),
        a=account_state("cooling_down", "rate_limited", errors=1, last="rate_limited"),
        cooldown_s=30,
    ),
    Case(
        "heavy_load_cools_down_without_blame",
        faults=(fault("heavy_load", status=503),),
        attempts=(("a", "heavy_load"),),
        a=account_state("cooling_down", "heavy_load", errors=1, last="heavy_load"),
        cooldown_s=300,
    ),
    Case(
        "quota_spent_at_create_cools_down_until_the_reset",
        sim_patch={"quota": 0, "quota_reset_s": 600},
        attempts=(("a", "quota_exhausted"),),
        a=account_state("cooling_down", "quota", quota_remaining=0),
        cooldown_s=600,
    ),
    # The network edge.
    Case(
        "cloudflare_challenge_is_retried_without_blame",
        faults=(fault("cloudflare"),),
        attempts=(("a", "cloudflare"),),
    ),
    Case(
        "cloudflare_challenge_until_the_cap_fails_with_its_own_code",
        faults=(fault("cloudflare", account=None, count=None, status=429),),
        status="failed",
        code="upstream_challenge",
        message=f"after {MAX_ATTEMPTS} attempts",
        attempts=(("a", "cloudflare"), ("b", "cloudflare")) * 2 + (("a", "cloudflare"),),
        sent=(3, 2),
        made=(0, 0),
    ),
    # Sentinel values: the client fetches a fresh one once by itself; a second refusal cools down.
    Case(
        "sentinel_block_twice_cools_down_and_rotates",
        faults=(fault("sentinel_block", count=2),),
        attempts=(("a", "sentinel_block"),),
        sent=(2, 1),
        a=account_state("cooling_down", "sentinel", errors=1, last="sentinel_block"),
        cooldown_s=600,
    ),
    Case(
        "sentinel_provider_down_is_not_the_accounts_fault",
        faults=({"fault": "http_503", "route": "sentinel"},),
        status="failed",
        code="sentinel_unavailable",
        message="signing service is unavailable",
        attempts=(("a", "sentinel_unavailable"), ("b", "sentinel_unavailable")) * 2
        + (("a", "sentinel_unavailable"),),
        sent=(0, 0),
        made=(0, 0),
    ),
    # Refusals that are the account's (or its egress's).
    Case(
        "low_trust_rotates_and_counts",
        faults=(fault("low_trust"),),
        attempts=(("a", "low_trust"),),
        a=account_state(errors=1, streak=1, last="low_trust"),
    ),
    Case(
        f"{BAN_THRESHOLD}_consecutive_account_faults_disable_with_error_limit",
        faults=(fault("low_trust", count=None),),
        accounts="a",
        status="failed",
        code="upstream_rejected",
        message="No upstream account is left",
        attempts=(("a", "low_trust"),) * BAN_THRESHOLD,
        sent=(BAN_THRESHOLD,),
        made=(0,),
        a=account_state(
            "disabled", "error_limit", errors=BAN_THRESHOLD, streak=BAN_THRESHOLD, last="low_trust"
        ),
    ),
    Case(
        "unsupported_country_blocks_the_account_and_rotates",
        faults=(fault("unsupported_country_code", country="KP"),),
        attempts=(("a", "unsupported_region"),),
        a=account_state("disabled", "region", errors=1, last="unsupported_region"),
    ),
    Case(
        "unsupported_country_with_no_account_left_fails",
        faults=(fault("unsupported_country_code", count=None),),
        accounts="a",
        status="failed",
        code="unsupported_region",
        message="No upstream account is left",
        attempts=(("a", "unsupported_region"),),
        sent=(1,),
        made=(0,),
        a=account_state("disabled", "region", errors=1, last="unsupported_region"),
    ),
    Case(
        "phone_number_required_disables_with_its_own_reason",
        faults=(fault("phone_number_required"),),
        attempts=(("a", "phone_required"),),
        a=account_state("disabled", "phone_required", errors=1, streak=1, last="phone_required"),
    ),
    # 5xx and timeouts: back off, then look in the same account's pending list before sending again.
    Case(
        "server_error_is_retried_on_the_same_account",
        faults=(fault("http_502"),),
        attempts=(("a", "server_error"),),
        on="a",
        sent=(2, 0),
        made=(1, 0),
    ),
    Case(
        "created_behind_a_500_is_adopted_not_repeated",
        faults=(fault("create_then_500"),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
    ),
    Case(
        "created_behind_a_500_is_found_by_the_next_attempt",
        faults=(fault("create_then_500"), {**fault("http_500"), "route": "pending"}),
        attempts=(("a", "server_error"),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
    ),
    Case(
        "created_behind_a_timeout_is_adopted",
        faults=(fault("create_then_slow", delay_s=CREATE_TIMEOUT_S + 2),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
    ),
    Case(
        "created_after_a_timeout_is_found_before_sending_again",
        faults=(fault("slow", delay_s=CREATE_TIMEOUT_S + 1),),
        attempts=(("a", "timeout"),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
    ),
    Case(
        f"server_errors_fail_the_job_after_{MAX_ATTEMPTS}_creates",
        faults=(fault("http_500", account=None, count=None),),
        status="failed",
        code="upstream_error",
        message=f"after {MAX_ATTEMPTS} attempts",
        attempts=(("a", "server_error"),) * MAX_ATTEMPTS,
        sent=(MAX_ATTEMPTS, 0),
        made=(0, 0),
    ),
    # Generation outcomes: terminal at once, never retried, never the account's fault.
    Case(
        "content_violation_fails_at_once",
        prompt="[sim:violation] a famous cartoon mouse",
        status="failed",
        code="content_filter",
        message=CONTENT_FILTER,
        attempts=(("a", "content_policy"),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
        a=account_state(video_count=0),
    ),
    Case(
        "pending_failed_fails_with_the_upstream_reason",
        prompt="[sim:fail] a house of cards",
        status="failed",
        code="generation_failed",
        message="The upstream could not generate the video: Video generation failed. Please try again.",
        attempts=(("a", "task_failed"),),
        on="a",
        sent=(1, 0),
        made=(1, 0),
    ),
]

# Jobs that moved on and still run: case id -> (video id, account id it must complete on, attempts).
_running: dict[str, tuple[str, int, int]] = {}


def _check_account(stack: Stack, acct: Acct, expected: dict[str, Any], name: str) -> dict:
    seen = token(stack, acct.id)
    for key, value in expected.items():
        if value is SET:
            assert seen[key] is not None, (name, key)
        elif key == "slots":
            assert {k: seen["slots"][k] for k in value} == value, (name, seen["slots"])
        else:
            assert seen[key] == value, (name, key, seen[key], value)
    return seen


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_upstream_failure(stack: Stack, case: Case) -> None:
    accts = fresh_accounts(stack, case.id, case.accounts)
    if case.sim_patch:
        stack.sim("PATCH", f"/accounts/{accts['a'].sim}", json=case.sim_patch)
    for spec in case.faults:
        label = spec.get("account")
        stack.sim("POST", "/faults", json={**spec, "account": accts[label].sim if label else None})

    video_id = stack.create_video(prompt=case.prompt)["id"]
    row = wait_placed(stack, video_id)
    if case.status == "failed" and row["state"] != "failed":
        stack.wait_video(video_id)  # a generation outcome: the job fails once upstream is done
        row = job_row(stack, video_id)

    # Every attempt, in order: the account, the error class and when.
    by_id = {acct.id: label for label, acct in accts.items()}
    assert [(by_id.get(a["account_id"]), a["error_class"]) for a in row["attempts"]] == list(case.attempts)
    times = [datetime.fromisoformat(a["at"]) for a in row["attempts"]]
    assert times == sorted(times)

    # What the simulator saw, per account: create requests and the tasks they made.
    labels = case.accounts
    assert tuple(creates_sent(stack, accts[label]) for label in labels) == case.sent
    assert tuple(tasks_made(stack, accts[label]) for label in labels) == case.made

    seen = _check_account(stack, accts["a"], case.a, case.id)
    if case.cooldown_s is not None:
        left = seen["cooldown_until"] - time.time()
        assert case.cooldown_s / 2 < left <= case.cooldown_s + 2, (case.id, left)
        if seen["reason"] == "quota":
            assert seen["cooldown_until"] == seen["quota_resets_at"]
    if "b" in accts and case.on != "b":
        _check_account(stack, accts["b"], UNTOUCHED, case.id)

    if case.status == "failed":
        video = stack.get_video(video_id)
        assert video["status"] == "failed"
        assert video["error"]["code"] == case.code
        assert case.message in video["error"]["message"]
        assert not [p for p in CHANNEL_KILLING_PHRASES if p in video["error"]["message"].lower()]
        return
    assert row["account_id"] == accts[case.on].id
    if case.on != "a":
        # Where the job went, nothing was held against the account.
        _check_account(stack, accts[case.on], UNTOUCHED, case.id)
    _running[case.id] = (video_id, accts[case.on].id, len(row["attempts"]))


def test_a_sentinel_block_is_retried_once_with_a_fresh_value(stack: Stack) -> None:
    accts = fresh_accounts(stack, "fresh-sentinel", "a")
    stack.sim("POST", "/faults", json={**fault("sentinel_block"), "account": accts["a"].sim})
    video_id = stack.create_video(prompt="a sentinel on the wall")["id"]
    row = wait_placed(stack, video_id)
    # The client handled it: the job saw no failed attempt and the account nothing.
    assert row["state"] == "running" and row["attempts"] == [] and row["account_id"] == accts["a"].id
    sent = stack.sim("GET", "/requests", params={"route": "nf_create", "account": accts["a"].sim})
    assert [r["status"] for r in sent] == [400, 200] and tasks_made(stack, accts["a"]) == 1
    values = [r["headers"].get("openai-sentinel-token") for r in sent]
    assert all(values) and values[0] != values[1]  # strict mode: the second one was freshly issued
    _check_account(stack, accts["a"], UNTOUCHED, "fresh-sentinel")
    _running["fresh-sentinel"] = (video_id, accts["a"].id, 0)


def test_an_account_whose_secret_cannot_be_read_is_disabled_not_fatal(stack: Stack) -> None:
    accts = fresh_accounts(stack, "sealed-with-an-old-key")
    broken = accts["a"].id
    execute(stack, "UPDATE accounts SET access_token_enc = 'gAAAAA-not-ours' WHERE id = $1", broken)
    video_id = stack.create_video(prompt="skip the unreadable account")["id"]
    row = wait_placed(stack, video_id)
    assert [(a["account_id"], a["error_class"]) for a in row["attempts"]] == [(broken, "secret_unreadable")]
    assert row["account_id"] == accts["b"].id
    listed = token(stack, broken)
    assert listed["enabled"] is False and listed["disabled_reason"] == "secret_unreadable"
    assert listed["token"].startswith("<unreadable")
    _running["secret"] = (video_id, accts["b"].id, 1)


def test_an_account_whose_poll_hangs_holds_back_no_other_account(stack: Stack) -> None:
    """Accounts are polled several to a task; one whose pending request hangs holds back only its own jobs."""
    hang_s = 20
    accts = fresh_accounts(stack, "hanging-poll")
    stuck = stack.create_video(prompt="on the account whose poll hangs")["id"]
    assert wait_placed(stack, stuck)["account_id"] == accts["a"].id
    answered = stack.create_video(prompt="on the account that answers")["id"]
    assert wait_placed(stack, answered)["account_id"] == accts["b"].id
    hang = {**fault("slow", count=1, delay_s=hang_s), "route": "pending", "account": accts["a"].sim}
    stack.sim("POST", "/faults", json=hang)

    assert stack.wait_video(answered)["status"] == "completed"
    # The other account's job is done while this one's poll still waits for its answer.
    assert job_row(stack, stuck)["state"] == "running"
    assert stack.wait_video(stuck, timeout=hang_s + 30)["status"] == "completed"


def test_every_job_that_moved_on_completes_where_it_went(stack: Stack) -> None:
    for name, (video_id, account_id, attempts) in _running.items():
        assert stack.wait_video(video_id)["status"] == "completed", name
        row = job_row(stack, video_id)
        assert row["account_id"] == account_id and len(row["attempts"]) == attempts, name
