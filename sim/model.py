"""Accounts, video and image tasks, uploads, posts and cameos, with every state derived from the clock at
read time.

A task's whole life is scheduled when it is created (absolute times on the sim clock), so what a reader
sees depends only on when it reads, never on how often anyone polled.

Prompt markers (case-insensitive; the first in ``MARKERS`` order wins):

- ``[sim:fail]``: fails when it would start running; listed as ``failed`` with ``failure_reason`` and
  ``error_message`` for ``failed_linger_s`` (scaled), then gone, no draft.
- ``[sim:stuck]``: ``queued`` with ``progress_pct`` 0 forever (keeps its concurrency slot forever).
- ``[sim:lost]``: leaves pending on time and never produces a draft.
- ``[sim:violation]``: completes, but the draft is ``sora_content_violation`` with no URL fields.
- ``[sim:nourl]``: the draft appears without ``url``/``downloadable_url``/``encodings`` for one more
  draft gap, then gets them.

In flight (counts toward the concurrency limit and ``max_in_flight``): from create until the task leaves
pending, or until it fails (a failed task still listed no longer holds a slot). Quota: one unit per task
that finishes generating a video (normal, ``nourl`` and ``lost``; not ``fail``/``violation``), charged when
it leaves pending, in fixed windows of ``quota_reset_s`` (scaled; an account's own ``quota_reset_s`` is
literal seconds and overrides it) counted from the account's creation.
Every video kind (``video``, ``remix``, ``storyboard``, ``extension``) shares that state machine, limit and
quota; image tasks do not.

Image tasks (``/video_gen``, listed in ``/v2/recent_tasks``): ``queued`` for ``image_queued_s`` →
``running`` for ``image_running_s`` (progress rising) → ``succeeded`` with one generation per variant. The
same markers apply: ``[sim:fail]`` fails as it would start running; ``[sim:violation]`` fails at the end
with a content-policy ``failure_reason``; ``[sim:stuck]`` stays ``queued`` forever; ``[sim:lost]`` is never
listed; ``[sim:nourl]`` is ``succeeded`` with ``generations: []`` for one draft gap (upstream's "keep
polling" case) before they appear. Images never count toward the concurrency limit or the quota.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from sim.config import SimConfig

# Marker words in a prompt pick a scripted outcome; the first one in this order wins.
MARKERS = ("fail", "stuck", "lost", "violation", "nourl")
PLAN_TITLES = {
    "chatgpt_free": "ChatGPT Free",
    "chatgpt_plus": "ChatGPT Plus",
    "chatgpt_pro": "ChatGPT Pro",
    "chatgpt_team": "ChatGPT Team",
}
DIMENSIONS = {"landscape": (640, 352), "portrait": (352, 640), "square": (480, 480)}
FAILURE_REASON = "Video generation failed. Please try again."
IMAGE_FAILURE_REASON = "Image generation failed. Please try again."
IMAGE_VIOLATION_REASON = "This content may violate our content policies."
VIOLATION_REASON = "This content may violate our guardrails concerning similarity to third-party content."
VIOLATION_MARKDOWN = (
    "This content may violate our [guardrails](https://openai.com/policies/usage-policies) "
    "concerning similarity to third-party content."
)
# Post ids as upstream shows them, alone or inside a share link.
POST_ID_RE = re.compile(r"s_[0-9a-f]{32}")
# Usernames of accounts and characters share one namespace, compared lower-cased.
USERNAME_RE = re.compile(r"[a-z0-9_.]{3,30}")
# An ``@name`` in a prompt; the look-behind keeps e-mail addresses out.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.@])@([A-Za-z0-9_.]+)")
# The second half of a cameo's ``username_hint`` (``owner.word``), picked at random per cameo.
CAMEO_WORDS = (
    "otter",
    "comet",
    "maple",
    "harbor",
    "sparrow",
    "ember",
    "juniper",
    "pixel",
    "willow",
    "quartz",
)
CAMEO_FAILURE_REASON = (
    "We couldn't create a cameo from this video. Try a clip where one person faces the camera."
)
# Progress shown while running climbs linearly between these two values.
RUNNING_START_PCT = 0.1
RUNNING_END_PCT = 0.95


def find_marker(prompt: str) -> str | None:
    low = prompt.lower()
    for marker in MARKERS:
        if f"[sim:{marker}]" in low:
            return marker
    return None


@dataclass(kw_only=True)
class Task:
    id: str
    seq: int
    account_id: str
    generation_id: str
    prompt: str
    title: str | None
    orientation: str
    n_frames: int
    model: str
    size: str
    style_id: str | None
    body: dict[str, Any]
    marker: str | None
    created_at: float
    t_queued: float
    t_running: float
    t_processing: float
    # None means never: a stuck task never leaves pending, lost/failed tasks never get a draft.
    t_left: float | None
    t_failed: float | None
    t_draft: float | None
    t_urls: float | None
    # video, remix, storyboard or extension: which create call made it.
    kind: str = "video"
    # What the create call referred to (uploads, files, remix target, extended draft), checked and normalised.
    inputs: dict[str, Any] = field(default_factory=dict)
    # ``@username`` mentions of characters, resolved at create time: [{character_id, username}].
    cameo_profiles: list[dict[str, str]] = field(default_factory=list)
    # Mentions that named no character the account may use, lower-cased, without the ``@``.
    unresolved_mentions: list[str] = field(default_factory=list)
    # What the client saw and when (first time each): a pending list without the task once it had left, a
    # drafts page with its draft, and a download of its video. A benchmark splits its delays with them.
    gone_seen_at: float | None = None
    draft_listed_at: float | None = None
    media_fetched_at: float | None = None

    @classmethod
    def schedule(cls, cfg: SimConfig, now: float, **fields: Any) -> Task:
        marker = fields["marker"]
        t_queued = now + cfg.scaled(cfg.preprocessing_s)
        t_running = t_queued + cfg.scaled(cfg.queued_s)
        t_processing = t_running + cfg.scaled(cfg.running_s)
        t_left: float | None = t_processing + cfg.scaled(cfg.processing_s)
        t_failed = t_draft = t_urls = None
        gap = cfg.scaled(cfg.draft_gap_s)
        if marker == "fail":
            # Fails as it would start running, then stays listed as failed for a while.
            t_failed = t_running
            t_left = t_failed + cfg.scaled(cfg.failed_linger_s)
        elif marker == "stuck":
            t_left = None
        elif marker != "lost":
            assert t_left is not None
            t_draft = t_left + gap
            if marker == "nourl":
                t_urls = t_draft + gap
            elif marker != "violation":
                t_urls = t_draft
        return cls(
            created_at=now,
            t_queued=t_queued,
            t_running=t_running,
            t_processing=t_processing,
            t_left=t_left,
            t_failed=t_failed,
            t_draft=t_draft,
            t_urls=t_urls,
            **fields,
        )

    @property
    def flight_end(self) -> float:
        """When the task stops counting toward the account's concurrency limit."""
        if self.t_failed is not None:
            return self.t_failed
        return math.inf if self.t_left is None else self.t_left

    def in_flight(self, now: float) -> bool:
        return self.created_at <= now < self.flight_end

    @property
    def produces_video(self) -> bool:
        return self.marker not in ("fail", "violation")

    @property
    def charged_at(self) -> float | None:
        """When the task used up one unit of quota (a finished video), if ever."""
        return self.t_left if self.produces_video else None

    def pending_state(self, now: float) -> tuple[str, float | None] | None:
        """(status, progress_pct) while listed in pending, else None."""
        if self.t_left is not None and now >= self.t_left:
            return None
        if now < self.t_queued:
            return "preprocessing", None
        if self.t_failed is not None and now >= self.t_failed:
            return "failed", None
        if self.t_left is None or now < self.t_running:
            return "queued", 0.0
        if now < self.t_processing:
            span = self.t_processing - self.t_running
            frac = (now - self.t_running) / span if span > 0 else 1.0
            return "running", round(RUNNING_START_PCT + (RUNNING_END_PCT - RUNNING_START_PCT) * frac, 4)
        return "processing", 1.0

    def draft_visible(self, now: float) -> bool:
        return self.t_draft is not None and now >= self.t_draft

    def has_urls(self, now: float) -> bool:
        return self.t_urls is not None and now >= self.t_urls

    def media_ready(self, now: float) -> bool:
        return self.produces_video and self.t_left is not None and now >= self.t_left

    def status(self, now: float) -> str:
        """A single word for the control API, covering the time after pending too."""
        state = self.pending_state(now)
        if state is not None:
            return state[0]
        if self.marker == "fail":
            return "failed"
        if self.marker == "lost":
            return "lost"
        if not self.draft_visible(now):
            return "awaiting_draft"
        if self.marker == "violation":
            return "content_violation"
        return "completed" if self.has_urls(now) else "draft_without_url"

    @property
    def width_height(self) -> tuple[int, int]:
        return DIMENSIONS.get(self.orientation, DIMENSIONS["landscape"])


@dataclass(kw_only=True)
class ImageTask:
    id: str
    seq: int
    account_id: str
    prompt: str
    operation: str
    width: int
    height: int
    n_variants: int
    body: dict[str, Any]
    marker: str | None
    inputs: dict[str, Any]
    generation_ids: list[str]
    created_at: float
    # None means never: a stuck task never runs, a failed one never gets generations.
    t_running: float | None
    t_done: float | None
    t_generations: float | None

    @classmethod
    def schedule(cls, cfg: SimConfig, now: float, **fields: Any) -> ImageTask:
        marker = fields["marker"]
        start = now + cfg.scaled(cfg.image_queued_s)
        end = start + cfg.scaled(cfg.image_running_s)
        t_running: float | None = start
        t_done: float | None = end
        t_generations: float | None = end
        if marker == "stuck":
            t_running = t_done = t_generations = None
        elif marker == "fail":
            t_done, t_generations = start, None
        elif marker in ("violation", "lost"):
            t_generations = None
        elif marker == "nourl":
            t_generations = end + cfg.scaled(cfg.draft_gap_s)
        return cls(created_at=now, t_running=t_running, t_done=t_done, t_generations=t_generations, **fields)

    def listed(self, now: float) -> bool:
        return self.marker != "lost" and self.created_at <= now

    def state(self, now: float) -> tuple[str, float | None]:
        """(status, progress_pct) as ``recent_tasks`` shows it."""
        if self.t_running is None or now < self.t_running:
            return "queued", 0.0
        assert self.t_done is not None
        if now < self.t_done:
            span = self.t_done - self.t_running
            frac = (now - self.t_running) / span if span > 0 else 1.0
            return "running", round(RUNNING_START_PCT + (RUNNING_END_PCT - RUNNING_START_PCT) * frac, 4)
        if self.marker in ("fail", "violation"):
            return "failed", None
        return "succeeded", 1.0

    @property
    def failure_reason(self) -> str:
        return IMAGE_VIOLATION_REASON if self.marker == "violation" else IMAGE_FAILURE_REASON

    @property
    def produces_images(self) -> bool:
        return self.marker not in ("fail", "violation", "stuck", "lost")

    def generations_ready(self, now: float) -> bool:
        return self.t_generations is not None and now >= self.t_generations


@dataclass(kw_only=True)
class Upload:
    """An input image: kind "upload" (``POST /uploads``, a media id) or "file" (``project_y/file/upload``)."""

    id: str
    kind: str
    account_id: str
    content_type: str
    data: bytes
    sha256: str
    file_name: str | None
    use_case: str | None
    created_at: float

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(kw_only=True)
class Post:
    id: str
    account_id: str
    generation_id: str
    task_id: str
    text: str
    created_at: float
    deleted_at: float | None = None
    # Creation order, the tie-break of feed orderings.
    seq: int = 0
    # Likes and views a seeded post starts with; accounts' likes come on top.
    base_likes: int = 0
    liked_by: set[str] = field(default_factory=set)
    view_count: int = 0

    @property
    def permalink(self) -> str:
        return f"https://sora.chatgpt.com/p/{self.id}"

    @property
    def like_count(self) -> int:
        return self.base_likes + len(self.liked_by)


@dataclass(kw_only=True)
class Cameo:
    """A cameo being made from a video or a draft, and the character it becomes once finalized.

    ``processing`` until ``t_done`` (``cameo_s``, scaled, after the start), then ``completed`` or, when a
    ``cameo_failed`` fault marked it, ``failed``; a ``cameo_stuck`` one has no ``t_done`` and never ends.
    """

    id: str
    seq: int
    account_id: str
    # "upload" (``characters/upload``) or "generation" (``characters/from-generation``).
    source: str
    source_generation_id: str | None
    timestamps: list[float]
    # The made-up name behind the hints: ``username_hint`` is ``<owner>.<word>``.
    owner_name: str
    word: str
    created_at: float
    t_done: float | None
    failure_reason: str | None = None
    fault: str | None = None
    character_id: str | None = None
    username: str | None = None
    display_name: str | None = None
    profile_asset_pointer: str | None = None
    instruction_set: Any = None
    safety_instruction_set: Any = None
    visibility: str = "private"
    finalized_at: float | None = None
    deleted_at: float | None = None

    def state(self, now: float) -> str:
        """``processing``, ``completed`` or ``failed``, from the clock."""
        if self.t_done is None or now < self.t_done:
            return "processing"
        return "failed" if self.failure_reason is not None else "completed"

    def progress(self, now: float) -> float:
        if self.t_done is None:
            return 0.0
        span = self.t_done - self.created_at
        return 1.0 if span <= 0 else round(min(1.0, max(0.0, (now - self.created_at) / span)), 4)

    @property
    def username_hint(self) -> str:
        return f"{self.owner_name}.{self.word}"

    @property
    def display_name_hint(self) -> str:
        return self.word.title()

    @property
    def live_character(self) -> bool:
        """Finalized and not deleted: its username is taken and prompts may mention it."""
        return self.character_id is not None and self.deleted_at is None


@dataclass(kw_only=True)
class Account:
    id: str
    user_id: str
    email: str
    name: str
    username: str | None
    plan: str
    quota: int
    max_concurrent: int
    token_ttl_s: float
    session_ttl_s: float
    client_id: str
    country: str
    created_at: float
    session_token: str
    session_expires_at: float
    refresh_token: str
    tasks: list[Task] = field(default_factory=list)
    image_tasks: list[ImageTask] = field(default_factory=list)
    # The simulator's own account behind seeded public posts: left out of account listings and stats.
    hidden: bool = False
    # Sora 2 activation: ``invite/mine`` answers 401 until ``m/bootstrap`` (or an accepted invite) sets it.
    activated: bool = True
    invite_code: str = ""
    # The code this account redeemed through ``invite/accept``, if any.
    invite_accepted: str | None = None
    # Literal (unscaled) quota window overriding ``SIM_QUOTA_RESET_S`` for this account.
    quota_reset_s: float | None = None
    creates: int = 0
    max_in_flight_seen: int = 0

    @property
    def plan_title(self) -> str:
        return PLAN_TITLES.get(self.plan, self.plan.replace("_", " ").title())

    def in_flight(self, now: float) -> int:
        return sum(1 for t in self.tasks if t.in_flight(now))

    def quota_state(self, now: float, window_s: float) -> tuple[int, int]:
        """(videos remaining in the current window, whole seconds until the window resets)."""
        if window_s > 0:
            start = self.created_at + math.floor((now - self.created_at) / window_s) * window_s
            resets_in = math.ceil(start + window_s - now)
        else:
            start, resets_in = self.created_at, 0
        used = sum(1 for t in self.tasks if (at := t.charged_at) is not None and start <= at <= now)
        return max(0, self.quota - used), resets_in
