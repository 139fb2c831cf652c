"""All simulator state, in memory, behind one lock.

Handlers do their reads and writes inside ``sim.lock`` and never await while holding it, so concurrent
requests (uvicorn's event loop, or the test client's portal thread) always see a consistent state.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sim import media, tokens
from sim.clock import SimClock
from sim.config import SimConfig
from sim.faults import FaultBook
from sim.model import (
    CAMEO_FAILURE_REASON,
    CAMEO_WORDS,
    MENTION_RE,
    Account,
    Cameo,
    ImageTask,
    Post,
    Task,
    Upload,
)

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
            self.image_tasks: dict[str, ImageTask] = {}
            # Video drafts by generation id (gen_…), for extension and publish lookups.
            self.generations: dict[str, Task] = {}
            # Media ids from /uploads and file ids from /project_y/file/upload share one namespace.
            self.uploads: dict[str, Upload] = {}
            self.posts: dict[str, Post] = {}
            self.post_seq = 0
            # Cameos by cameo id, and the finalized ones again by character id.
            self.cameos: dict[str, Cameo] = {}
            self.characters: dict[str, Cameo] = {}
            self.cameo_seq = 0
            self.sim_account_id: str | None = None
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
        activated = _bool_field(data, "activated", True)
        quota_reset_s = _num_field(data, "quota_reset_s", None)
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
            activated=activated,
            invite_code=self._new_invite_code(),
            quota_reset_s=quota_reset_s,
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
        if "activated" in data:
            account.activated = _bool_field(data, "activated", account.activated)
        if "quota_reset_s" in data:
            # null goes back to the global (scaled) window.
            account.quota_reset_s = _num_field(data, "quota_reset_s", None)

    def _new_invite_code(self) -> str:
        taken = {a.invite_code for a in self.accounts.values()}
        while (code := tokens.invite_code()) in taken:
            pass
        return code

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

    def quota_window(self, account: Account) -> float:
        """The account's own literal window if it has one, else ``SIM_QUOTA_RESET_S`` scaled."""
        if account.quota_reset_s is not None:
            return account.quota_reset_s
        return self.config.scaled(self.config.quota_reset_s)

    def account_status(self, account: Account) -> dict[str, Any]:
        now = self.now()
        remaining, resets_in = account.quota_state(now, self.quota_window(account))
        return {
            "account_id": account.id,
            "user_id": account.user_id,
            "email": account.email,
            "username": account.username,
            "name": account.name,
            "activated": account.activated,
            "invite_code": account.invite_code,
            "invite_accepted": account.invite_accepted,
            "quota_reset_s": account.quota_reset_s,
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
        remaining, resets_in = account.quota_state(self.now(), self.quota_window(account))
        return {
            "estimated_num_videos_remaining": remaining,
            "estimated_num_purchased_videos_remaining": 0,
            "rate_limit_reached": remaining <= 0,
            "access_resets_in_seconds": resets_in,
        }

    # ----- tasks ---------------------------------------------------------------------------------

    def create_task(self, account: Account, fields: dict[str, Any]) -> Task:
        now = self.now()
        task = self._add_task(account, fields, now)
        account.creates += 1
        self.creates_total += 1
        # Overlap of in-flight intervals peaks at some interval's start, so checking at each create is exact.
        account.max_in_flight_seen = max(account.max_in_flight_seen, account.in_flight(now))
        return task

    def _add_task(self, account: Account, fields: dict[str, Any], start: float) -> Task:
        self.task_seq += 1
        task = Task.schedule(
            self.config,
            start,
            id=tokens.task_id(),
            seq=self.task_seq,
            account_id=account.id,
            generation_id=tokens.generation_id(),
            **fields,
        )
        self.tasks[task.id] = task
        self.generations[task.generation_id] = task
        account.tasks.append(task)
        return task

    def owned_draft(self, account: Account, generation_id: str) -> Task | None:
        """The account's visible draft with that id; another account's draft is as good as unknown."""
        task = self.generations.get(generation_id)
        if task is None or task.account_id != account.id or not task.draft_visible(self.now()):
            return None
        return task

    def create_image_task(self, account: Account, fields: dict[str, Any]) -> ImageTask:
        self.task_seq += 1
        task = ImageTask.schedule(
            self.config,
            self.now(),
            id=tokens.task_id(),
            seq=self.task_seq,
            account_id=account.id,
            generation_ids=[tokens.generation_id() for _ in range(fields["n_variants"])],
            **fields,
        )
        self.image_tasks[task.id] = task
        account.image_tasks.append(task)
        return task

    def media_owner(self, key: str) -> str | None:
        """The account whose task or upload a media path belongs to."""
        owned = (
            self.tasks.get(key) or self.image_tasks.get(key) or self.uploads.get(key) or self.cameos.get(key)
        )
        return owned.account_id if owned else None

    def task_status(self, task: Task | ImageTask) -> dict[str, Any]:
        if isinstance(task, ImageTask):
            return self.image_task_status(task)
        now = self.now()
        left = task.t_left if task.t_left is not None and now >= task.t_left else None
        ready = task.produces_video
        return {
            "task_id": task.id,
            "kind": task.kind,
            "inputs": task.inputs,
            "account_id": task.account_id,
            "prompt": task.prompt,
            "marker": task.marker,
            "status": task.status(now),
            "created_at": task.created_at,
            "left_pending_at": left,
            "draft_at": task.t_draft if task.draft_visible(now) else None,
            "draft_id": task.generation_id if task.draft_visible(now) else None,
            "gone_seen_at": task.gone_seen_at,
            "draft_listed_at": task.draft_listed_at,
            "media_fetched_at": task.media_fetched_at,
            "video_sha256": media.sha256(media.video_bytes(task.id, media.CLEAN)) if ready else None,
            "video_wm_sha256": media.sha256(media.video_bytes(task.id, media.WATERMARKED)) if ready else None,
            "cameo_profiles": task.cameo_profiles,
            "unresolved_mentions": task.unresolved_mentions,
        }

    def image_task_status(self, task: ImageTask) -> dict[str, Any]:
        now = self.now()
        status = "lost" if task.marker == "lost" else task.state(now)[0]
        images = [
            media.sha256(media.image_bytes(task.id, i, task.width, task.height))
            for i in range(len(task.generation_ids))
        ]
        return {
            "task_id": task.id,
            "kind": "image",
            "inputs": task.inputs,
            "account_id": task.account_id,
            "prompt": task.prompt,
            "marker": task.marker,
            "status": status,
            "created_at": task.created_at,
            "operation": task.operation,
            "width": task.width,
            "height": task.height,
            "n_variants": task.n_variants,
            "generation_ids": task.generation_ids if task.generations_ready(now) else [],
            "image_sha256": images if task.produces_images else None,
        }

    # ----- uploads and posts ---------------------------------------------------------------------

    def add_upload(self, account: Account, kind: str, data: bytes, content_type: str, **meta: Any) -> Upload:
        upload = Upload(
            id=tokens.media_id() if kind == "upload" else tokens.file_id(),
            kind=kind,
            account_id=account.id,
            content_type=content_type,
            data=data,
            sha256=media.sha256(data),
            file_name=meta.get("file_name"),
            use_case=meta.get("use_case"),
            created_at=self.now(),
        )
        self.uploads[upload.id] = upload
        return upload

    def owned_upload(self, account: Account, upload_id: Any, kind: str) -> Upload | None:
        upload = self.uploads.get(upload_id) if isinstance(upload_id, str) else None
        if upload is None or upload.kind != kind or upload.account_id != account.id:
            return None
        return upload

    def upload_status(self, upload: Upload) -> dict[str, Any]:
        return {
            "id": upload.id,
            "kind": upload.kind,
            "account_id": upload.account_id,
            "content_type": upload.content_type,
            "size": upload.size,
            "sha256": upload.sha256,
            "file_name": upload.file_name,
            "use_case": upload.use_case,
            "created_at": upload.created_at,
        }

    def create_post(self, account: Account, task: Task, text: str, **counts: int) -> Post:
        self.post_seq += 1
        post = Post(
            id=tokens.post_id(),
            account_id=account.id,
            generation_id=task.generation_id,
            task_id=task.id,
            text=text,
            created_at=self.now(),
            seq=self.post_seq,
            **counts,
        )
        self.posts[post.id] = post
        return post

    def live_post(self, post_id: Any) -> Post | None:
        post = self.posts.get(post_id) if isinstance(post_id, str) else None
        return post if post is not None and post.deleted_at is None else None

    def sim_account(self) -> Account:
        """The hidden account that owns seeded public posts, created on first use."""
        if self.sim_account_id is None:
            creds = self.register_account(
                {"email": "public@sora-sim.example.com", "username": "sora_sim", "quota": 1_000_000}
            )
            self.sim_account_id = creds["account_id"]
            self.accounts[self.sim_account_id].hidden = True
        return self.accounts[self.sim_account_id]

    def seed_post(self, data: dict[str, Any]) -> Post:
        """A public post over an already finished draft, so tests can remix a post they did not make."""
        account_id = data.get("account")
        if account_id is not None and account_id not in self.accounts:
            raise LookupError(f"no account {account_id}")
        account = self.accounts[account_id] if account_id is not None else self.sim_account()
        for key in ("prompt", "text", "orientation"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{key} must be a string")
        orientation = data.get("orientation") or "landscape"
        if orientation not in ("landscape", "portrait", "square"):
            raise ValueError("orientation must be landscape, portrait or square")
        n_frames = _int_field(data, "n_frames", 300, minimum=1)
        like_count = _int_field(data, "like_count", 0, minimum=0)
        view_count = _int_field(data, "view_count", 0, minimum=0)
        cfg = self.config
        lifetime = cfg.scaled(
            cfg.preprocessing_s + cfg.queued_s + cfg.running_s + cfg.processing_s + cfg.draft_gap_s
        )
        prompt = data.get("prompt") or "A seeded public video"
        fields = {
            "prompt": prompt,
            "title": None,
            "orientation": orientation,
            "n_frames": n_frames,
            "model": "sy_8",
            "size": "small",
            "style_id": None,
            "body": {},
            # Markers would make the seeded draft unusable, which is never what a seed is for.
            "marker": None,
        }
        # Backdated (by a second more than a video takes) so the draft is complete right now.
        task = self._add_task(account, fields, self.now() - lifetime - 1.0)
        return self.create_post(
            account, task, data.get("text") or "", base_likes=like_count, view_count=view_count
        )

    def post_status(self, post: Post) -> dict[str, Any]:
        return {
            "id": post.id,
            "permalink": post.permalink,
            "account_id": post.account_id,
            "generation_id": post.generation_id,
            "task_id": post.task_id,
            "text": post.text,
            "created_at": post.created_at,
            "deleted": post.deleted_at is not None,
            "deleted_at": post.deleted_at,
            "like_count": post.like_count,
            "view_count": post.view_count,
        }

    # ----- usernames, cameos and characters ------------------------------------------------------

    def username_holder(self, username: str) -> Account | Cameo | None:
        """Who holds a username (accounts and live characters share one namespace, case-insensitive)."""
        name = username.lower()
        for account in self.accounts.values():
            if account.username is not None and account.username.lower() == name:
                return account
        for cameo in self.characters.values():
            if cameo.live_character and cameo.username is not None and cameo.username.lower() == name:
                return cameo
        return None

    def start_cameo(
        self,
        account: Account,
        *,
        source: str,
        timestamps: list[float],
        generation_id: str | None = None,
        fault: str | None = None,
        reason: str | None = None,
    ) -> Cameo:
        now = self.now()
        self.cameo_seq += 1
        owner = account.username or account.email.split("@")[0]
        owner = "".join(c for c in owner.lower() if c.isalnum() or c == "_") or "user"
        cameo = Cameo(
            id=tokens.cameo_id(),
            seq=self.cameo_seq,
            account_id=account.id,
            source=source,
            source_generation_id=generation_id,
            timestamps=timestamps,
            owner_name=owner,
            word=secrets.choice(CAMEO_WORDS),
            created_at=now,
            t_done=None if fault == "stuck" else now + self.config.scaled(self.config.cameo_s),
            failure_reason=(reason or CAMEO_FAILURE_REASON) if fault == "failed" else None,
            fault=fault,
        )
        self.cameos[cameo.id] = cameo
        return cameo

    def owned_cameo(self, account: Account, cameo_id: Any) -> Cameo | None:
        cameo = self.cameos.get(cameo_id) if isinstance(cameo_id, str) else None
        return cameo if cameo is not None and cameo.account_id == account.id else None

    def finalize_cameo(self, cameo: Cameo, fields: dict[str, Any]) -> None:
        cameo.character_id = tokens.character_id()
        cameo.username = fields["username"]
        cameo.display_name = fields["display_name"]
        cameo.profile_asset_pointer = fields["profile_asset_pointer"]
        cameo.instruction_set = fields["instruction_set"]
        cameo.safety_instruction_set = fields["safety_instruction_set"]
        cameo.finalized_at = self.now()
        self.characters[cameo.character_id] = cameo

    def usable_character(self, account: Account, username: str) -> Cameo | None:
        """The live character a mention names, if this account may use it (public, or its own)."""
        holder = self.username_holder(username)
        if not isinstance(holder, Cameo):
            return None
        return holder if holder.visibility == "public" or holder.account_id == account.id else None

    def resolve_mentions(self, account: Account, prompt: str) -> dict[str, list[Any]]:
        """``cameo_profiles`` and ``unresolved_mentions`` of a prompt's ``@username`` mentions."""
        resolved: list[dict[str, str]] = []
        unresolved: list[str] = []
        for match in MENTION_RE.finditer(prompt):
            # A sentence may end right after a mention: "with @alice.".
            name = match.group(1).rstrip(".").lower()
            if not name:
                continue
            character = self.usable_character(account, name)
            if character is None:
                if name not in unresolved:
                    unresolved.append(name)
                continue
            assert character.character_id is not None and character.username is not None
            if all(r["character_id"] != character.character_id for r in resolved):
                resolved.append({"character_id": character.character_id, "username": character.username})
        return {"cameo_profiles": resolved, "unresolved_mentions": unresolved}

    def cameo_status(self, cameo: Cameo) -> dict[str, Any]:
        state = cameo.state(self.now())
        return {
            "cameo_id": cameo.id,
            "character_id": cameo.character_id,
            "username": cameo.username,
            "display_name": cameo.display_name,
            "account_id": cameo.account_id,
            "status": "finalized" if cameo.character_id is not None else state,
            "status_message": cameo.failure_reason if state == "failed" else None,
            "fault": cameo.fault,
            "visibility": cameo.visibility,
            "deleted": cameo.deleted_at is not None,
            "source": cameo.source,
            "source_generation_id": cameo.source_generation_id,
            "timestamps": cameo.timestamps,
            "profile_asset_pointer": cameo.profile_asset_pointer,
            "instruction_set": cameo.instruction_set,
            "safety_instruction_set": cameo.safety_instruction_set,
            "created_at": cameo.created_at,
            "completed_at": cameo.t_done,
            "finalized_at": cameo.finalized_at,
            "deleted_at": cameo.deleted_at,
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
            "creates": {a.id: a.creates for a in self.accounts.values() if not a.hidden},
            "max_in_flight": {a.id: a.max_in_flight_seen for a in self.accounts.values() if not a.hidden},
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


def _num_field(data: dict[str, Any], key: str, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{key} must be a positive number")
    return float(value)


def _bool_field(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean")
    return value


def encode_cursor(t_draft: float, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{t_draft!r}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    t_draft, seq = raw.split(":")
    return float(t_draft), int(seq)


def encode_key_cursor(kind: str, key: tuple[float, ...]) -> str:
    """An opaque cursor for a listing sorted by ``key`` descending; ``kind`` ties it to that ordering."""
    return base64.urlsafe_b64encode(json.dumps([kind, *key]).encode()).decode().rstrip("=")


def decode_key_cursor(kind: str, cursor: str) -> tuple[float, ...]:
    """The key a cursor continues after; ValueError when it is not one of ``kind``'s cursors."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(raw, list) or not raw or raw[0] != kind:
        raise ValueError("invalid cursor")
    key = raw[1:]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in key):
        raise ValueError("invalid cursor")
    return tuple(float(v) for v in key)
