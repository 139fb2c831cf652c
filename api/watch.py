"""Following a job as it changes: the snapshot, then its events, without polling Postgres.

One Redis pub/sub connection per API process (Litestar's channels plugin) is
shared by every waiting request and stream. The order matters: subscribe first,
then read the snapshot, then forward newer versions, so nothing that happens
in between is lost; events are de-duplicated by ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import anyio
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis

from shared.errors import NotFound
from shared.events import JobEvent, decode, event_for
from shared.resources import Resources


class SerializedPubSubBackend(RedisChannelsPubSubBackend):
    """One subscribe or unsubscribe at a time on the shared pub/sub connection.

    redis-py's PubSub opens its connection lazily and without a lock: concurrent first
    subscribes each open one, only the last is read, and the others' events are lost.
    """

    def __init__(self, *, redis: Redis) -> None:
        super().__init__(redis=redis)
        self._change: asyncio.Lock | None = None

    def _lock(self) -> asyncio.Lock:
        if self._change is None:  # created on first use, inside the app's event loop
            self._change = asyncio.Lock()
        return self._change

    async def subscribe(self, channels: Iterable[str]) -> None:
        async with self._lock():
            await super().subscribe(channels)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        async with self._lock():
            await super().unsubscribe(channels)


def channels_plugin(redis: Redis) -> ChannelsPlugin:
    return ChannelsPlugin(
        backend=SerializedPubSubBackend(redis=redis),
        arbitrary_channels_allowed=True,
        # A slow client must not hold memory without bound: drop its oldest events, never the newest
        # (which carry the whole state, the terminal one included).
        subscriber_max_backlog=1000,
        subscriber_backlog_strategy="dropleft",
    )


async def follow(
    channels: ChannelsPlugin, resources: Resources, job_id: str, *, after_seq: int | None = None
) -> AsyncIterator[JobEvent]:
    """The current state, then every newer version, until the terminal one.

    Resuming (``after_seq``, an SSE Last-Event-ID) skips what the client already has.
    """
    channel = resources.keys.job_channel(job_id)
    subscriber = await channels.subscribe([channel])
    try:
        job = await resources.jobs.get(job_id)
        if job is None:
            raise NotFound(f"No video found with id '{job_id}'", param="video_id")
        snapshot = event_for(job)
        last = -1 if after_seq is None else after_seq
        if snapshot.seq > last:
            yield snapshot
            last = snapshot.seq
        if snapshot.terminal:
            return
        async for raw in subscriber.iter_events():
            event = decode(raw)
            if event.seq <= last:
                continue
            last = event.seq
            yield event
            if event.terminal:
                return
    finally:
        # A client that disconnects cancels this stream; the unsubscribe must still run to the end,
        # or the shared connection keeps a subscription per dropped client.
        with anyio.CancelScope(shield=True):
            await channels.unsubscribe(subscriber)


async def with_heartbeat(events: AsyncIterator[JobEvent], every_s: float) -> AsyncIterator[JobEvent | None]:
    """Yields None whenever ``every_s`` passes without an event (for SSE keep-alive comments)."""
    iterator = aiter(events)
    pending: asyncio.Future[JobEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await iterator.aclose()  # type: ignore[attr-defined]


async def wait_until_done(
    channels: ChannelsPlugin, resources: Resources, job_id: str, timeout_s: float
) -> JobEvent | None:
    """The terminal event, or None when the job is still running after ``timeout_s``."""
    events = follow(channels, resources, job_id)
    try:
        async with asyncio.timeout(timeout_s):
            async for event in events:
                if event.terminal:
                    return event
    except TimeoutError:
        return None
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return None
