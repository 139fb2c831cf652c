"""Celery beat that sends only while it holds a lock in Redis, so two beats never tick twice.

A deployment runs one beat, but a rollout, a stuck node or a second `make beat` can start another.
Each beat takes the lock (``SET NX`` with a TTL) before a pass and renews it at a third of the TTL;
the one that doesn't hold it stands by and tries again at the same pace. A beat that stops releases
the lock at once, one that dies loses it when the TTL runs out, and a standby takes over then.

The lock is renewed before each pass sends anything, so two beats can overlap only if the holder
pauses for longer than the TTL between its renewal and its sends; every periodic task is safe to run
twice, and ticks expire quickly, so that costs one extra tick at most.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Any

import redis
from celery.beat import PersistentScheduler

from shared.names import Keys
from shared.settings import Settings

log = logging.getLogger(__name__)

# Takes the lock if it is free, renews it if this holder has it: 1 when the caller holds it afterwards.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class BeatLock:
    """One holder at a time, identified by a token; it expires unless renewed within ``ttl_s``."""

    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._client = client
        self._acquire_or_renew = client.register_script(_ACQUIRE_OR_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Takes or renews the lock; False when another holder has it."""
        return bool(self._acquire_or_renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    def holder(self) -> str | None:
        value = self._client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


class LockedScheduler(PersistentScheduler):
    """PersistentScheduler whose passes run only while this beat holds the beat lock."""

    # Bound by locked_scheduler(); `-S worker.beat:LockedScheduler` alone reads the environment.
    settings: Settings | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = self.settings or Settings.from_env()
        self._client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.lock = BeatLock(self._client, Keys(settings.redis_prefix).beat_lock(), settings.beat_lock_ttl_s)
        self._check_every_s = settings.beat_lock_ttl_s / 3
        self._leading: bool | None = None  # unknown until the first pass
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            return self._check_every_s
        return min(super().tick(*args, **kwargs), self._check_every_s)

    def _hold_lock(self) -> bool:
        try:
            held = self.lock.hold()
        except redis.RedisError as exc:
            # Without Redis there is no broker either: nothing could be sent anyway.
            log.warning("beat lock: Redis unavailable (%s); not sending", type(exc).__name__)
            held = False
        if held != self._leading:
            if held:
                log.info("beat lock %s taken: this beat sends the periodic tasks", self.lock.key)
            else:
                log.info("beat lock %s held by %s: standing by", self.lock.key, self._holder())
            self._leading = held
        return held

    def _holder(self) -> str:
        try:
            return self.lock.holder() or "nobody"
        except redis.RedisError:
            return "unknown"

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._leading:
                try:
                    self.lock.release()
                except redis.RedisError:
                    log.warning("beat lock: could not release; it expires by itself")
                self._leading = False
            self._client.close()

    @property
    def info(self) -> str:
        return f"{super().info}\n    . lock -> {self.lock.key} (ttl {self.lock.ttl_ms / 1000:g} s)"


def locked_scheduler(settings: Settings) -> type[LockedScheduler]:
    """The scheduler class for ``beat_scheduler``, bound to these settings (Celery builds it itself)."""
    return type("LockedScheduler", (LockedScheduler,), {"settings": settings, "__module__": __name__})
