"""One event stream for all the running jobs a console page lists.

Each job is followed as ``GET /v1/videos/{id}/events`` follows it (``api.watch.follow``: subscribe, snapshot,
newer versions until the terminal one), and their events are merged into one stream. It ends when every job
has ended, so the page's EventSource is told to close rather than reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from litestar.channels import ChannelsPlugin

from api.watch import follow
from shared.errors import GatewayError
from shared.events import JobEvent
from shared.resources import Resources

log = logging.getLogger("api.console")


async def follow_many(
    channels: ChannelsPlugin, services: Resources, job_ids: Sequence[str]
) -> AsyncIterator[JobEvent]:
    """Every event of these jobs as it comes, until each has ended (or was not found)."""
    queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()

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

    pumps = [asyncio.create_task(pump(job_id)) for job_id in dict.fromkeys(job_ids)]
    try:
        running = len(pumps)
        while running:
            event = await queue.get()
            if event is None:
                running -= 1
            else:
                yield event
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
