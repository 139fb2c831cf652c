"""Typed settings, read once from the environment and passed in.

Nothing here connects anywhere; ``Settings.from_env()`` only parses.
Every field is an environment variable of the same name in upper case;
``.env.example`` lists them all with their defaults.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

import msgspec


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@functools.lru_cache(maxsize=8)
def _key_set(value: str) -> frozenset[str]:
    # Read on every request: split once per distinct setting, not each time.
    return frozenset(_split(value))


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Our own infrastructure
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/sora_gateway"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prepended to every Redis key, channel and Celery queue; empty in production.
    redis_prefix: str = ""

    # Access
    api_keys: str = ""
    admin_key: str = ""
    # Encrypts account secrets at rest (any string; a Fernet key is derived from it).
    encryption_key: str = ""

    # Upstream hosts: each its own setting so one simulator can stand in for all.
    sora_backend_url: str = "https://sora.chatgpt.com/backend"
    sora_web_url: str = "https://sora.chatgpt.com"
    openai_auth_url: str = "https://auth.openai.com"
    # none | static:<value> | http(s)://<operator sentinel service>
    sentinel_provider: str = "none"
    # Hosts media may be downloaded from, besides the backend's own host.
    media_allowed_hosts: str = "videos.openai.com"
    # Watermark-free downloads: the default for requests that don't say (`watermark` field), the operator's
    # parser service (POST {url}/get-sora-link; empty: use the post detail), and whether to fall back to the
    # watermarked file when the clean one cannot be had.
    watermark_free: bool = False
    watermark_parser_url: str = ""
    watermark_fallback: bool = True
    upstream_timeout_s: float = 120.0
    create_timeout_s: float = 30.0
    # The sora2api query routes (feed, profiles, search, invite codes) keep each answer this long; 0 = off.
    query_cache_s: float = 10.0

    # Serving
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    media_dir: str = ".data/media"
    media_ttl_s: int = 86400
    max_media_bytes: int = 512 * 1024 * 1024
    # Largest character source video taken (upload, base64 or a fetched URL); MP4 only.
    character_video_max_bytes: int = 20 * 1024 * 1024
    # Largest request body the API reads (JSON or multipart, uploads included); larger ones get a 413.
    request_max_body_bytes: int = 32 * 1024 * 1024
    # Longest prompt taken, in characters; longer ones get a 400 prompt_too_long.
    prompt_max_chars: int = 8000
    # Signs the download links in Video.data[].url; defaults to a value derived from encryption_key.
    url_signing_key: str = ""
    log_level: str = "INFO"
    # text (a terminal) or json (one object per line, for a log collector; the container deployments).
    log_format: str = "text"

    # Metrics (Prometheus)
    # /metrics without a key (a scraper on a private network); otherwise it takes METRICS_KEY or ADMIN_KEY.
    metrics_public: bool = False
    # A bearer key for the scraper alone, so it need not hold the admin key.
    metrics_key: str = ""
    # The worker's main process serves its processes' metrics on this port (0: off), at /metrics.
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    # Where the worker's processes keep their metric files (emptied at start); empty: a temporary directory.
    worker_metrics_dir: str = ""

    # Media storage: `local` (MEDIA_DIR, one host) or `s3` (any S3-compatible store shared by every pod).
    storage_backend: Literal["local", "s3"] = "local"
    # Empty: AWS S3 for the region. MinIO and other stores: their URL, usually with S3_PATH_STYLE=true.
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = ""
    # Every key goes under this prefix (e.g. `media/`), so one bucket can hold several deployments.
    s3_prefix: str = ""
    # Empty: botocore's own chain (AWS_* variables, web identity on EKS, instance roles).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # Path-style addressing (endpoint/bucket/key) instead of virtual hosts (bucket.endpoint/key).
    s3_path_style: bool = False
    # Multipart part size; a write holds at most one part in memory. S3's minimum is 5 MiB.
    s3_part_size: int = 8 * 1024 * 1024
    # Address clients reach the store by, for presigned URLs, when it differs from S3_ENDPOINT_URL.
    s3_public_endpoint_url: str = ""
    # Media downloads answer a 307 to a presigned URL of the store instead of streaming through the API
    # (s3 only). Off by default: NewAPI's content proxy does not follow redirects.
    storage_redirect: bool = False
    # How long a presigned URL works (never past the job's expires_at).
    storage_redirect_ttl_s: int = 300
    # How often beat deletes the media of jobs past their expires_at.
    media_expire_interval_s: float = 300.0

    # Job engine
    poll_interval_s: float = 3.0
    # An account whose tasks are all still queued upstream (no progress to show yet) is polled on every
    # this many ticks instead of every tick. 1 polls it on every tick.
    poll_queued_ticks: int = 3
    # An account whose videos are all running but none has reached FINISHING_PROGRESS (80 %) yet is polled on
    # every this many ticks: its progress shows a little less often, and a video that far from its end is
    # not expected to finish before then. 1 polls it on every tick.
    poll_running_ticks: int = 2
    job_deadline_s: int = 3600
    # How long a task may be in neither the pending list nor the drafts before it counts as lost.
    draft_grace_s: float = 300.0
    sweep_interval_s: float = 15.0
    # A queued job whose message has not been picked up after this long is enqueued again.
    requeue_after_s: float = 60.0
    max_submit_attempts: int = 5
    # Longest wait before a job's next create attempt (exponential backoff with jitter, or upstream's
    # retry-after); a timed-out create still waits CREATE_TIMEOUT_S, to find the task before sending again.
    retry_backoff_max_s: float = 60.0
    # async_mode=false holds a create this long at most, then answers the job as it is.
    sync_wait_s: float = 600.0
    # SSE streams send a keep-alive comment when nothing happened for this long.
    sse_keepalive_s: float = 15.0
    # A non-stream chat request with max_tokens at most this is a channel health check (NewAPI, OneAPI).
    channel_test_max_tokens: int = 64
    worker_concurrency: int = 4
    # Whether a worker's commits wait for Postgres to flush them to disk (synchronous_commit). Off: a step's
    # write is visible at once but lost if Postgres itself crashes within about 0.6 s of it; each step is
    # resumable from the state before it, so that costs a repeated step, not a job. The API's writes (a
    # created job, a cancel) always wait.
    worker_synchronous_commit: bool = False
    # A submit or finalize at work marks its job alive this often. A submit silent for three times as long
    # died with its worker: the sweeper resumes it (adopting the task its create may have made).
    step_heartbeat_s: float = 5.0
    # SIGTERM on a worker: running tasks get this long to finish, then the rest is handed back to the broker
    # for another worker and the worker exits. Keep it under the platform's kill grace (Kubernetes: 30 s).
    worker_soft_shutdown_timeout_s: float = 25.0
    # Wait that long on SIGTERM even when no task runs, so that tasks held for a later retry go back too.
    worker_soft_shutdown_on_idle: bool = True

    # Account pool
    # Consecutive account-side errors that disable an account (reason error_limit); 0 turns it off.
    error_ban_threshold: int = 3
    # Tokens expiring within this window are refreshed (ST, then RT), a batch per check, earliest first.
    refresh_window_s: int = 3600
    refresh_batch: int = 5
    # A failed or claimed refresh is not tried again before this.
    refresh_retry_s: int = 300
    # How often beat looks for due refreshes and for quota cooldowns that have ended.
    account_check_interval_s: float = 60.0
    # OAuth client for imported refresh tokens that don't name one (the ChatGPT iOS app's).
    default_client_id: str = "app_LlGpXReQgckcGGUo2JrYvtJK"
    beat_schedule_file: str = ".data/celerybeat-schedule"
    # Beat sends only while it holds a Redis lock with this TTL (renewed at a third of it), so a second beat,
    # started by mistake or during a rollout, stands by instead of ticking twice.
    beat_lock_ttl_s: float = 30.0
    # The worker touches this file every WORKER_HEARTBEAT_INTERVAL_S from its main event loop; a liveness
    # probe checks its age. Empty: no file (make run, tests). The container image sets it.
    worker_heartbeat_file: str = ""
    worker_heartbeat_interval_s: float = 10.0

    # Operator console (/console)
    # How long a console login lasts (a session in Redis; logging out or changing ADMIN_KEY ends it sooner).
    console_session_ttl_s: int = 43200
    # Where operators open Flower, linked from the console's overview; empty: no link.
    flower_url: str = ""

    # Bundled simulator (used by `make run` and the tests)
    sim_port: int = 8765

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(field.name.upper())
            if value is not None and value != "":
                raw[field.name] = value
        raw.update(overrides)
        return msgspec.convert(raw, cls, strict=False)

    # Derived values -------------------------------------------------------

    @property
    def api_key_set(self) -> frozenset[str]:
        return _key_set(self.api_keys)

    @property
    def media_hosts(self) -> frozenset[str]:
        hosts = set(_split(self.media_allowed_hosts))
        for trusted in (self.sora_backend_url, self.watermark_parser_url):
            host = urlsplit(trusted).hostname
            if host:
                hosts.add(host)
        return frozenset(h.lower() for h in hosts)

    @property
    def lease_ttl_s(self) -> int:
        # Renewed on every poll tick; long enough to survive a few missed ticks.
        return int(max(60.0, self.poll_interval_s * 10))

    @property
    def sync_database_url(self) -> str:
        """The same database for tools that want a plain libpq URL (asyncpg.connect, psql)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
