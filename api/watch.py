"""Following a job as it changes: the snapshot, then its events, without polling Postgres.

One Redis pub/sub connection per API process (Litestar's channels plugin) is
shared by every waiting request and stream. The order matters: subscribe first,
then read the snapshot, then forward newer versions, so nothing that happens
in between is lost; events are de-duplicated by ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import anyio
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import NotFound
from shared.events import JobEvent, decode, encode, event_for
from shared.metrics import SSE_STREAMS
from shared.resources import Resources

log = logging.getLogger("api.watch")


# Told to every follower when the pub/sub connection is back after a loss: events sent meanwhile are gone,
# so it reads the job again. Events are JSON objects, so this can never be one.
RESYNC = b"resync"
_LOST_RETRY_S = 0.5


class SerializedPubSubBackend(RedisChannelsPubSubBackend):
    """One subscribe or unsubscribe at a time on the shared pub/sub connection, and a listener that
    outlives a Redis restart.

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

    def _live_channels(self) -> set[bytes]:
        return set(self._pub_sub.channels.keys() - self._pub_sub.pending_unsubscribe_channels)

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        """The plugin's one listener (the base class's, which ends for good at the first connection error).

        While Redis is away it keeps trying; redis-py reconnects and subscribes again to every channel.
        Then every follower gets ``RESYNC``, since what was published meanwhile is lost.
        """
        lost = False
        while True:
            await self._has_subscribed.wait()
            try:
                message = await self._pub_sub.get_message(
                    ignore_subscribe_messages=True, timeout=self._stream_sleep_no_subscriptions
                )
            except (RedisError, OSError) as exc:
                if not lost:
                    log.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                lost = True
                await asyncio.sleep(_LOST_RETRY_S)
                continue
            if lost:
                lost = False
                log.info("pub/sub connection back; followers read their jobs again")
                for channel in self._live_channels():
                    yield channel.decode(), RESYNC
            if message is None:
                continue
            channel: str = message["channel"].decode()
            # Unsubscribing is queued by redis: a message can still come for a channel just left.
            if channel.encode() in self._live_channels():
                yield channel, message["data"]


def channels_plugin(redis: Redis) -> ChannelsPlugin:
    return ChannelsPlugin(
        backend=SerializedPubSubBackend(redis=redis),
        arbitrary_channels_allowed=True,
        # A slow client must not hold memory without bound: drop its oldest events, never the newest
        # (which carry the whole state, the terminal one included).
        subscriber_max_backlog=1000,
        subscriber_backlog_strategy="dropleft",
    )


# The same published payload reaches every stream that follows its job (the plugin hands each subscriber the
# same bytes object, whose hash Python keeps), so it is decoded, and rendered as an SSE frame, once per job
# rather than once per stream. The events are never changed after decoding. Bounded: cleared when full.
_SHARED_MAX = 4096
_decoded: dict[bytes, JobEvent] = {}
_frames: dict[int, tuple[JobEvent, bytes]] = {}

KEEPALIVE_FRAME = b": keep-alive\r\n\r\n"


def _shared_event(raw: bytes) -> JobEvent:
    event = _decoded.get(raw)
    if event is None:
        if len(_decoded) >= _SHARED_MAX:
            _decoded.clear()
        event = _decoded[raw] = decode(raw)
    return event


def sse_frame(event: JobEvent) -> bytes:
    """The event as one SSE message (``id`` its seq, ``event`` its status, ``data`` its JSON), built once
    per event object: a published event's frame is shared by every stream that delivers it."""
    hit = _frames.get(id(event))
    if hit is not None and hit[0] is event:
        return hit[1]
    frame = b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (event.seq, event.status.encode(), encode(event))
    if len(_frames) >= _SHARED_MAX:
        _frames.clear()
    _frames[id(event)] = (event, frame)  # holding the event keeps its id from being reused
    return frame


async def follow(
    channels: ChannelsPlugin,
    resources: Resources,
    job_id: str,
    *,
    after_seq: int | None = None,
    keepalive_s: float | None = None,
    stream: str | None = None,
) -> AsyncIterator[JobEvent | None]:
    """The current state, then every newer version, until the terminal one.

    Resuming (``after_seq``, an SSE Last-Event-ID) skips what the client already has. With
    ``keepalive_s``, None comes whenever that long passes without an event (for SSE keep-alive comments),
    and the stream counts as open under the ``stream`` label while it runs.
    """
    channel = resources.keys.job_channel(job_id)
    subscriber = await channels.subscribe([channel])
    open_streams = SSE_STREAMS.labels(stream) if stream is not None else None
    if open_streams is not None:
        open_streams.inc()
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
        # The subscriber's queue is read directly (Litestar's Subscriber.iter_events reads it the same way):
        # a plain get with a timeout needs no task per event, which waiting on the iterator would.
        queue = subscriber._queue
        while True:
            if keepalive_s is not None and queue.empty():
                try:
                    async with asyncio.timeout(keepalive_s):
                        raw = await queue.get()
                except TimeoutError:
                    yield None
                    continue
            else:
                raw = await queue.get()
            queue.task_done()
            if raw is None:  # the plugin ends a subscriber with None
                return
            if raw == RESYNC:
                current = await resources.jobs.get(job_id)
                if current is None:
                    return
                event = event_for(current)
            else:
                event = _shared_event(raw)
            if event.seq <= last:
                continue
            last = event.seq
            yield event
            if event.terminal:
                return
    finally:
        if open_streams is not None:
            open_streams.dec()
        # A client that disconnects cancels this stream; the unsubscribe must still run to the end,
        # or the shared connection keeps a subscription per dropped client.
        with anyio.CancelScope(shield=True):
            await channels.unsubscribe(subscriber)


async def with_heartbeat(
    events: AsyncIterator[JobEvent], every_s: float, *, stream: str
) -> AsyncIterator[JobEvent | None]:
    """Yields None whenever ``every_s`` passes without an event (for SSE keep-alive comments).

    Every SSE stream runs through here, so here it is counted as open (``stream`` names its kind).
    """
    iterator = aiter(events)
    pending: asyncio.Future[JobEvent] | None = None
    open_streams = SSE_STREAMS.labels(stream)
    open_streams.inc()
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
        open_streams.dec()
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
                if event is not None and event.terminal:
                    return event
    except TimeoutError:
        return None
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return None
