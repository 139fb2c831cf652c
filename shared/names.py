"""Every name other systems depend on, in one place.

Flower, KEDA and dashboards read task and queue names; the SSE relay and the
workers agree on channels and keys through these functions.
"""

from __future__ import annotations

# Celery task names (stable: they appear in Flower and in queued messages).
TASK_VIDEO_SUBMIT = "videos.submit"
TASK_VIDEO_FINALIZE = "videos.finalize"
TASK_POLL_TICK = "poll.tick"
TASK_POLL_ACCOUNTS = "poll.accounts"
# One account a message: what releases before poll.accounts sent; still served.
TASK_POLL_ACCOUNT = "poll.account"
# An account's drafts read again soon after a task left pending before its draft was listed.
TASK_POLL_DRAFTS = "poll.drafts"
TASK_SWEEP = "jobs.sweep"
TASK_DISPATCH = "jobs.dispatch"
TASK_ACCOUNTS_MAINTAIN = "accounts.maintain"
TASK_ACCOUNT_REFRESH = "accounts.refresh"
TASK_MEDIA_EXPIRE = "media.expire"

# Celery queues: submits and finalizes are short, polls are frequent and tiny.
QUEUE_SUBMIT = "submit"
QUEUE_POLL = "poll"
QUEUE_FINALIZE = "finalize"
QUEUE_MAINTENANCE = "maintenance"
# Workers take from the first of these that has a message (kombu's Redis "priority" order): beat's short
# periodic tasks, then work that finishes what has started (finalizes, polls), then new creates. A wave of
# completions is not queued behind thousands of waiting creates. Creates wait only while finishing work
# does, and that work shrinks as it is done (a poll per busy account, a finalize per finished job).
ALL_QUEUES = (QUEUE_MAINTENANCE, QUEUE_FINALIZE, QUEUE_POLL, QUEUE_SUBMIT)


class Keys:
    """Redis keys and channels, all under the configured prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def job_channel(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def jobs_created_channel(self) -> str:
        """Every new job's id, published once its row is committed (the console's live job list)."""
        return f"{self.prefix}jobs:created"

    def lease(self, account_id: int, kind: str) -> str:
        return f"{self.prefix}lease:{account_id}:{kind}"

    def leases_freed(self, kind: str) -> str:
        """A counter of the slots of a kind given back, so a full pool is known to be full still."""
        return f"{self.prefix}lease-freed:{kind}"

    def poll_guard(self, account_id: int) -> str:
        return f"{self.prefix}poll:{account_id}"

    def rate_window(self, key_id: int, minute: int) -> str:
        return f"{self.prefix}rate:{key_id}:{minute}"

    def query_cache(self, route: str, digest: str) -> str:
        return f"{self.prefix}query:{route}:{digest}"

    def console_session(self, session_id: str) -> str:
        return f"{self.prefix}console:session:{session_id}"

    def console_login_failures(self, client: str) -> str:
        return f"{self.prefix}console:login-failures:{client}"

    def beat_lock(self) -> str:
        return f"{self.prefix}beat:lock"

    def pattern(self) -> str:
        return f"{self.prefix}*"
