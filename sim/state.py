"""All simulator state, in memory, behind one lock.

Handlers do their reads and writes inside ``sim.lock`` and never await while holding it, so concurrent
requests (uvicorn's event loop, or the test client's portal thread) always see a consistent state.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sim import media, tokens
from sim.clock import SimClock
from sim.config import SimConfig
from sim.faults import FaultBook
from sim.model import Account, Task

DEFAULT_CLIENT_ID = "app_LlGpXReQgckcGGUo2JrYvtJK"
DEFAULT_TOKEN_TTL_S = 10 * 86400
DEFAULT_SESSION_TTL_S = 30 * 86400


@dataclass
class AccessToken:
    account_id: str
    exp: float | None


class SimState:
    def __init__(self, config: SimConfig, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock(config.clock)
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.accounts: dict[str, Account] = {}
            self.access_tokens: dict[str, AccessToken] = {}
            self.revoked_access_tokens: set[str] = set()
            self.session_tokens: dict[str, str] = {}
            self.refresh_tokens: dict[str, str] = {}
            # Rotated-out RTs, remembered so reuse gets its own error.
            self.used_refresh_tokens: dict[str, str] = {}
            self.tasks: dict[str, Task] = {}
            self.sentinel_tokens: set[str] = set()
            self.faults = FaultBook()
            self.log: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
            self.seq = 0
            self.task_seq = 0
            self.requests_by_route: Counter[str] = Counter()
            self.creates_total = 0

    def now(self) -> float:
        return self.clock.now()

    # ----- accounts and tokens -------------------------------------------------------------------

    def mint_access_token(self, account: Account, now: float) -> str:
        exp = now + account.token_ttl_s
        token = tokens.mint_jwt(
            sub=account.user_id,
            email=account.email,
            iat=now,
            exp=exp,
            client_id=account.client_id,
            plan=account.plan,
        )
        self.access_tokens[token] = AccessToken(account.id, exp)
        return token

    def register_account(self, data: dict[str, Any]) -> dict[str, Any]:
        """Seed an account; registering an AT that is already known returns that account again."""
        now = self.now()
        given_at = data.get("access_token")
        if given_at is not None and not isinstance(given_at, str):
            raise ValueError("access_token must be a string")
        if given_at and given_at in self.access_tokens:
            return self.account_credentials(self.accounts[self.access_tokens[given_at].account_id], given_at)
        for key in ("email", "plan", "session_token", "refresh_token", "client_id", "country", "name"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{key} must be a string")
        if data.get("username") is not None and not isinstance(data["username"], str):
            raise ValueError("username must be a string or null")
        claims = tokens.decode_claims(given_at) if given_at else None
        claims = claims or {}
        profile = claims.get(tokens.PROFILE_CLAIM)
        claim_email = profile.get("email") if isinstance(profile, dict) else None
        acct_id = tokens.account_id()
        email = data.get("email") or claim_email or f"{acct_id.removeprefix('acct_')}@sim.example.com"
        local = email.split("@")[0]
        plan = data.get("plan") or "chatgpt_plus"
        quota = _int_field(data, "quota", 100, minimum=0)
        max_concurrent = _int_field(data, "max_concurrent", self.config.max_concurrent, minimum=1)
        token_ttl_s = _num_field(data, "token_ttl_s", DEFAULT_TOKEN_TTL_S)
        session_ttl_s = _num_field(data, "session_ttl_s", DEFAULT_SESSION_TTL_S)
        session_token = data.get("session_token") or tokens.opaque("st_", 48)
        refresh_token = data.get("refresh_token") or tokens.opaque("rt_", 32)
        if session_token in self.session_tokens or refresh_token in self.refresh_tokens:
            raise ValueError("session_token or refresh_token already belongs to another account")
        account = Account(
            id=acct_id,
            user_id=claims.get("sub") if isinstance(claims.get("sub"), str) else tokens.user_id(),
            email=email,
            name=data.get("name") or local.replace(".", " ").title(),
            # Absent means a generated name; an explicit null means "not set yet", as upstream shows it.
            username=data["username"] if "username" in data else _default_username(local, acct_id),
            plan=plan,
            quota=quota,
            max_concurrent=max_concurrent,
            token_ttl_s=token_ttl_s,
            session_ttl_s=session_ttl_s,
            client_id=data.get("client_id") or DEFAULT_CLIENT_ID,
            country=data.get("country") or "US",
            created_at=now,
            session_token=session_token,
            session_expires_at=now + session_ttl_s,
            refresh_token=refresh_token,
        )
        self.accounts[acct_id] = account
        self.session_tokens[session_token] = acct_id
        self.refresh_tokens[refresh_token] = acct_id
        if given_at:
            exp = claims.get("exp")
            known_exp = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
            self.access_tokens[given_at] = AccessToken(acct_id, known_exp)
            access_token = given_at
        else:
            access_token = self.mint_access_token(account, now)
        return self.account_credentials(account, access_token)

    def account_credentials(self, account: Account, access_token: str) -> dict[str, Any]:
        return {
            "account_id": account.id,
            "email": account.email,
            "access_token": access_token,
            "session_token": account.session_token,
            "refresh_token": account.refresh_token,
            "client_id": account.client_id,
            "plan": account.plan,
        }

    def update_account(self, account: Account, data: dict[str, Any]) -> None:
        if "plan" in data:
            account.plan = str(data["plan"])
        if "quota" in data:
            account.quota = _int_field(data, "quota", account.quota, minimum=0)
        if "max_concurrent" in data:
            account.max_concurrent = _int_field(data, "max_concurrent", account.max_concurrent, minimum=1)
        if "username" in data:
            account.username = data["username"]
        if "country" in data:
            account.country = str(data["country"])
        if "token_ttl_s" in data:
            account.token_ttl_s = _num_field(data, "token_ttl_s", account.token_ttl_s)

    def revoke(self, account: Account, kinds: list[str]) -> None:
        if "access" in kinds:
            for token, info in self.access_tokens.items():
                if info.account_id == account.id:
                    self.revoked_access_tokens.add(token)
        if "session" in kinds:
            self.session_tokens.pop(account.session_token, None)
        if "refresh" in kinds:
            self.refresh_tokens.pop(account.refresh_token, None)

    def bearer_account(self, token: str | None) -> tuple[Account | None, str | None]:
        """(account, problem) for a Bearer value; problem is None, "invalidated" or "expired"."""
        info = self.access_tokens.get(token) if token else None
        if info is None or token in self.revoked_access_tokens:
            return (self.accounts.get(info.account_id) if info else None), "invalidated"
        account = self.accounts[info.account_id]
        if info.exp is not None and self.now() >= info.exp:
            return account, "expired"
        return account, None

    def account_status(self, account: Account) -> dict[str, Any]:
        now = self.now()
        remaining, resets_in = account.quota_state(now, self.config.scaled(self.config.quota_reset_s))
        return {
            "account_id": account.id,
            "email": account.email,
            "username": account.username,
            "plan": account.plan,
            "quota": account.quota,
            "quota_remaining": remaining,
            "access_resets_in_seconds": resets_in,
            "in_flight": account.in_flight(now),
            "max_in_flight_seen": account.max_in_flight_seen,
            "max_concurrent": account.max_concurrent,
            "creates": account.creates,
            "country": account.country,
        }

    def credit_balance(self, account: Account) -> dict[str, Any]:
        remaining, resets_in = account.quota_state(self.now(), self.config.scaled(self.config.quota_reset_s))
        return {
            "estimated_num_videos_remaining": remaining,
            "estimated_num_purchased_videos_remaining": 0,
            "rate_limit_reached": remaining <= 0,
            "access_resets_in_seconds": resets_in,
        }

    # ----- tasks ---------------------------------------------------------------------------------

    def create_task(self, account: Account, fields: dict[str, Any]) -> Task:
        now = self.now()
        self.task_seq += 1
        task = Task.schedule(
            self.config,
            now,
            id=tokens.task_id(),
            seq=self.task_seq,
            account_id=account.id,
            generation_id=tokens.generation_id(),
            **fields,
        )
        self.tasks[task.id] = task
        account.tasks.append(task)
        account.creates += 1
        self.creates_total += 1
        # Overlap of in-flight intervals peaks at some interval's start, so checking at each create is exact.
        account.max_in_flight_seen = max(account.max_in_flight_seen, account.in_flight(now))
        return task

    def task_status(self, task: Task) -> dict[str, Any]:
        now = self.now()
        left = task.t_left if task.t_left is not None and now >= task.t_left else None
        ready = task.produces_video
        return {
            "task_id": task.id,
            "account_id": task.account_id,
            "prompt": task.prompt,
            "marker": task.marker,
            "status": task.status(now),
            "created_at": task.created_at,
            "left_pending_at": left,
            "draft_at": task.t_draft if task.draft_visible(now) else None,
            "draft_id": task.generation_id if task.draft_visible(now) else None,
            "video_sha256": media.sha256(media.video_bytes(task.id, media.CLEAN)) if ready else None,
            "video_wm_sha256": media.sha256(media.video_bytes(task.id, media.WATERMARKED)) if ready else None,
        }

    # ----- sentinel ------------------------------------------------------------------------------

    def issue_sentinel(self) -> dict[str, str]:
        token = tokens.opaque("gAAAAAB", 48)
        self.sentinel_tokens.add(token)
        return {"sentinel_token": token, "device_id": str(uuid.uuid4())}

    # ----- request log ---------------------------------------------------------------------------

    def log_request(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        entry["seq"] = self.seq
        entry["ts"] = self.now()
        self.log.append(entry)
        self.requests_by_route[entry["route"]] += 1
        return entry

    def stats(self) -> dict[str, Any]:
        return {
            "creates_total": self.creates_total,
            "creates": {a.id: a.creates for a in self.accounts.values()},
            "max_in_flight": {a.id: a.max_in_flight_seen for a in self.accounts.values()},
            "requests_by_route": dict(self.requests_by_route),
        }


def _default_username(local: str, acct_id: str) -> str:
    clean = "".join(c for c in local.lower() if c.isalnum())[:20] or "user"
    return clean + acct_id[-4:]


def _int_field(data: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}")
    return value


def _num_field(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{key} must be a positive number")
    return float(value)


def encode_cursor(t_draft: float, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{t_draft!r}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    t_draft, seq = raw.split(":")
    return float(t_draft), int(seq)
