"""The SQLModel tables: Postgres is the source of truth for jobs and accounts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from shared.timeutil import utcnow


# Plain functions, not the builtins: pydantic inspects a default factory's signature on every model
# construction, and for `dict` and `list` that means parsing a text signature (a quarter of a Job's cost).
def _empty_dict() -> dict[str, Any]:
    return {}


def _empty_list() -> list[Any]:
    return []


def _ts(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, **kw))


class JobState:
    """Internal states. Clients see four of them through ``public_status``."""

    QUEUED = "queued"  # waiting for an account slot (or for its submit message)
    SUBMITTING = "submitting"  # holds a slot; the create call is in flight
    RUNNING = "running"  # upstream task id known; progress comes from poll ticks
    FINALIZING = "finalizing"  # upstream done; downloading media
    COMPLETED = "completed"
    FAILED = "failed"

    ACTIVE = (SUBMITTING, RUNNING)  # hold an account slot
    TERMINAL = (COMPLETED, FAILED)
    OPEN = (QUEUED, SUBMITTING, RUNNING, FINALIZING)


PUBLIC_STATUS = {
    JobState.QUEUED: "queued",
    JobState.SUBMITTING: "queued",
    JobState.RUNNING: "in_progress",
    JobState.FINALIZING: "in_progress",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
}


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    # sha256 of the access token: lets us refuse duplicates without decrypting anything.
    token_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    access_token_enc: str = Field(sa_column=Column(Text, nullable=False))
    session_token_enc: str | None = Field(default=None, sa_column=Column(Text))
    refresh_token_enc: str | None = Field(default=None, sa_column=Column(Text))
    # A refresh token works only with the client id (and redirect) it was issued for.
    client_id: str | None = Field(default=None, sa_column=Column(Text))
    redirect_uri: str | None = Field(default=None, sa_column=Column(Text))
    proxy_url: str | None = Field(default=None, sa_column=Column(Text))

    email: str | None = Field(default=None, sa_column=Column(Text))
    name: str | None = Field(default=None, sa_column=Column(Text))
    username: str | None = Field(default=None, sa_column=Column(Text))
    remark: str | None = Field(default=None, sa_column=Column(Text))

    expires_at: datetime | None = _ts()
    plan_type: str | None = Field(default=None, sa_column=Column(Text))
    plan_title: str | None = Field(default=None, sa_column=Column(Text))
    subscription_end: datetime | None = _ts()
    quota_remaining: int | None = Field(default=None, sa_column=Column(Integer))
    quota_resets_at: datetime | None = _ts()

    video_concurrency: int = Field(default=3, sa_column=Column(Integer, nullable=False, server_default="3"))
    image_concurrency: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    # Characters in the making (upload → processing → finalize) held at once.
    character_concurrency: int = Field(
        default=1, sa_column=Column(Integer, nullable=False, server_default="1")
    )
    enabled: bool = Field(default=True, nullable=False)
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text))
    cooldown_until: datetime | None = _ts()
    cooldown_reason: str | None = Field(default=None, sa_column=Column(Text))

    video_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    image_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    error_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    consecutive_errors: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # Today's counts (UTC day in today_date; a new day starts them from zero).
    today_date: date | None = Field(default=None, sa_column=Column(Date))
    today_video_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    today_image_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    today_error_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_at: datetime | None = _ts()
    # Token refresh: when it last worked, why it last failed, and not before when to try again.
    refreshed_at: datetime | None = _ts()
    refresh_error: str | None = Field(default=None, sa_column=Column(Text))
    refresh_not_before: datetime | None = _ts()
    # What the onboarding/test calls could not learn, by call: {"me": "…", "nf_check": "…"}.
    check_errors: dict[str, str] = Field(
        default_factory=_empty_dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    last_checked_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_account_state", "account_id", "state"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
        # The retention task's work list: finished jobs whose media is still stored.
        Index("ix_jobs_media_kept", "completed_at", postgresql_where=text("media_purged_at IS NULL")),
    )

    id: str = Field(sa_column=Column(Text, primary_key=True))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    # Fingerprint of the client key that created the job; jobs are visible to their owner only.
    owner: str = Field(sa_column=Column(Text, nullable=False))
    idempotency_key: str | None = Field(default=None, sa_column=Column(Text))
    # Fingerprint of the create request, so a reused Idempotency-Key with another body is refused.
    request_hash: str | None = Field(default=None, sa_column=Column(Text))

    state: str = Field(default=JobState.QUEUED, sa_column=Column(Text, nullable=False))
    progress: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # Version of the job's event stream: bumped by every state or progress change.
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))

    model: str = Field(sa_column=Column(Text, nullable=False))
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    seconds: int = Field(sa_column=Column(Integer, nullable=False))
    size: str = Field(sa_column=Column(Text, nullable=False))
    # What the upstream call needs (orientation, n_frames, upstream model/size, style, prompt as sent).
    params: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    user_metadata: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    remixed_from_video_id: str | None = Field(default=None, sa_column=Column(Text))

    account_id: int | None = Field(default=None, sa_column=Column(Integer, index=False))
    upstream_task_id: str | None = Field(default=None, sa_column=Column(Text, unique=True))
    upstream_status: str | None = Field(default=None, sa_column=Column(Text))
    generation_id: str | None = Field(default=None, sa_column=Column(Text))
    media_url: str | None = Field(default=None, sa_column=Column(Text))
    thumbnail_url: str | None = Field(default=None, sa_column=Column(Text))
    # Images made in one request (n > 1) share a group; each is its own job and upstream task.
    group_id: str | None = Field(default=None, sa_column=Column(Text, index=True))
    # The published post of this job's draft (remix source, watermark-free flow).
    post_id: str | None = Field(default=None, sa_column=Column(Text))
    media_key: str | None = Field(default=None, sa_column=Column(Text))
    thumbnail_key: str | None = Field(default=None, sa_column=Column(Text))
    media_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))

    error_code: str | None = Field(default=None, sa_column=Column(Text))
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    # One entry per upstream attempt: {"at", "account_id", "error_class", "message"}.
    attempts: list[dict[str, Any]] = Field(
        default_factory=_empty_list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )

    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # When a submit message was last sent; NULL while parked waiting for a free account slot.
    enqueued_at: datetime | None = _ts()
    submit_started_at: datetime | None = _ts()
    submitted_at: datetime | None = _ts()
    # First poll that found the task in neither the pending list nor the drafts.
    missing_since: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    expires_at: datetime | None = _ts()
    # Deleted by its owner: media removed, the id answers 404.
    deleted_at: datetime | None = _ts()
    # The retention task deleted the job's media and staged inputs (expires_at passed); done once.
    media_purged_at: datetime | None = _ts()
    deadline_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

    @property
    def public_status(self) -> str:
        return PUBLIC_STATUS[self.state]

    @property
    def is_terminal(self) -> bool:
        return self.state in JobState.TERMINAL


class ApiKey(SQLModel, table=True):
    """A client key made through the admin API. Only its hash is stored; it is shown once."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    key_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    # The first characters, so an operator can tell keys apart.
    prefix: str = Field(sa_column=Column(Text, nullable=False))
    label: str | None = Field(default=None, sa_column=Column(Text))
    # Requests per minute; NULL means unlimited.
    rate_limit: int | None = Field(default=None, sa_column=Column(Integer))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class Character(SQLModel, table=True):
    """A character (cameo) made through the gateway, usable as ``@username`` in prompts."""

    __tablename__ = "characters"
    __table_args__ = (Index("ix_characters_owner_created", "owner", "created_at"),)

    id: str = Field(sa_column=Column(Text, primary_key=True))  # char_…
    owner: str = Field(sa_column=Column(Text, nullable=False))
    # The job that made it (kind "character").
    job_id: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    account_id: int = Field(sa_column=Column(Integer, nullable=False))
    cameo_id: str = Field(sa_column=Column(Text, nullable=False))
    character_id: str = Field(sa_column=Column(Text, nullable=False))
    username: str = Field(sa_column=Column(Text, nullable=False))
    display_name: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    deleted_at: datetime | None = _ts()
