"""One event stream for the jobs a console page lists.

Each job is followed as ``GET /v1/videos/{id}/events`` follows it (``api.watch.follow``: subscribe, snapshot,
newer versions until the terminal one), and their events are merged into one stream. A page that shows the
newest jobs also listens for jobs created meanwhile (``Keys.jobs_created_channel``): those its filters
match are announced (``NewJob``) and followed too, and the stream lasts until the page goes. Otherwise it
ends when every job has ended, so the page's EventSource is told to close rather than reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from litestar.channels import ChannelsPlugin

from api.watch import follow
from shared.errors import GatewayError
from shared.events import JobEvent
from shared.jobs import JOB_ID
from shared.resources import Resources

log = logging.getLogger("api.console")


@dataclass(frozen=True)
class NewJob:
    job_id: str


@dataclass(frozen=True)
class Listening:
    """New jobs are listened for from here on."""


async def follow_many(
    channels: ChannelsPlugin,
    services: Resources,
    job_ids: Sequence[str],
    *,
    listed: Callable[[str], Awaitable[bool]] | None = None,
    most: int = 100,
) -> AsyncIterator[JobEvent | NewJob | Listening]:
    """Every event of these jobs as it comes, until each has ended (or was not found).

    With ``listed`` (whether a new job belongs on the page), new jobs it accepts are announced and followed
    as well, ``most`` at a time, and the stream does not end by itself; ``Listening`` tells when that began.
    """
    queue: asyncio.Queue[JobEvent | NewJob | Listening | None] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()
    following = 0

    async def pump(job_id: str) -> None:
        try:
            async for event in follow(channels, services, job_id):
                queue.put_nowait(event)
        except GatewayError:
            pass  # gone meanwhile: nothing more will come for it
        except Exception:
            log.exception("following job %s for the console failed", job_id)
        finally:
            queue.put_nowait(None)

    def start(job_id: str) -> None:
        nonlocal following
        following += 1
        task = asyncio.create_task(pump(job_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def watch_new(check: Callable[[str], Awaitable[bool]]) -> None:
        try:
            subscriber = await channels.subscribe([services.keys.jobs_created_channel()])
        except Exception:
            log.exception("the console could not listen for new jobs")
            return
        queue.put_nowait(Listening())
        try:
            async for raw in subscriber.iter_events():
                job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
                if not JOB_ID.fullmatch(job_id) or following >= most:  # also skips a resync notice
                    continue
                try:
                    if not await check(job_id):
                        continue
                except Exception:
                    log.exception("checking the new job %s for the console failed", job_id)
                    continue
                queue.put_nowait(NewJob(job_id))
                start(job_id)
        finally:
            with anyio.CancelScope(shield=True):
                await channels.unsubscribe(subscriber)

    for job_id in dict.fromkeys(job_ids):
        start(job_id)
    watcher = asyncio.create_task(watch_new(listed)) if listed is not None else None
    try:
        while following or watcher is not None:
            item = await queue.get()
            if item is None:
                following -= 1
            else:
                yield item
    finally:
        pending = [*tasks, *([watcher] if watcher is not None else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
