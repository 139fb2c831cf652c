"""Job progress events: the payload workers publish on ``job:{id}``.

Built from the job row a state change returned, so ``seq`` is the row's own
version and subscribers can order and de-duplicate by it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from shared.models import Job, JobState
from shared.names import Keys

EVENT_VERSION = 1

# What the job is doing, in the vocabulary of the chat stream's `stage` field.
_STAGE = {
    JobState.QUEUED: "processing",
    JobState.SUBMITTING: "processing",
    JobState.RUNNING: "generation",
    JobState.FINALIZING: "cache",
    JobState.COMPLETED: "generation",
    JobState.FAILED: "error",
}


class EventError(msgspec.Struct):
    message: str
    code: str


class JobEvent(msgspec.Struct, kw_only=True):
    v: int = EVENT_VERSION
    job_id: str
    seq: int
    kind: str
    state: str
    status: str
    progress: int
    stage: str
    ts: float
    message: str = ""
    error: EventError | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed")


def event_for(job: Job, message: str = "") -> JobEvent:
    error = None
    if job.state == JobState.FAILED:
        error = EventError(message=job.error_message or "Generation failed", code=job.error_code or "failed")
    return JobEvent(
        job_id=job.id,
        seq=job.seq,
        kind=job.kind,
        state=job.state,
        status=job.public_status,
        progress=job.progress,
        stage="character_creation" if job.kind == "character" and error is None else _STAGE[job.state],
        ts=time.time(),
        message=message,
        error=error,
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JobEvent)


def encode(event: JobEvent) -> bytes:
    return _encoder.encode(event)


def decode(payload: bytes | str) -> JobEvent:
    return _decoder.decode(payload)


class Publisher:
    """Publishes job events on Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def publish(self, job: Job, message: str = "") -> JobEvent:
        event = event_for(job, message)
        await self._redis.publish(self._keys.job_channel(job.id), encode(event))
        return event

    async def publish_many(self, jobs: Sequence[Job]) -> None:
        """``publish`` for each job, in one round trip."""
        if jobs:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    pipe.publish(self._keys.job_channel(job.id), encode(event_for(job)))
                await pipe.execute()
