"""Characters (contract section 3): make one from a video or one of your videos, list the finished ones.

A character is a job like a video (``char_…``; follow it at ``GET /v1/videos/tasks/{id}``);
once done it is usable as ``@username`` in any prompt.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from api import bounds
from api.auth import client_auth
from api.character_requests import plan_character_job
from api.schemas import CharacterList, CharacterObject, character_of, character_of_row
from api.video_requests import discard_inputs, flag, read_fields, start_jobs
from api.watch import wait_until_done
from shared.characters import CharacterRepo
from shared.errors import Conflict
from shared.models import Job
from shared.resources import Resources


async def submit_character(
    request: Request, services: Resources, channels: ChannelsPlugin, fields: dict[str, Any]
) -> Job:
    """Stores and enqueues a character job; ``async_mode=false`` holds the request until it ends."""
    idempotency_key = bounds.idempotency_key(request)
    # Checked before anything is stored: a committed create is never answered with an error.
    hold = not flag(fields.get("async_mode"), default=True)
    job = await plan_character_job(
        fields, owner=request.state.owner, idempotency_key=idempotency_key, resources=services
    )
    stored, created = await services.admission.insert(job)
    if not created:
        await discard_inputs(services, job.id)  # a repeated create: the stored job has its own video
    if not created and stored.request_hash != job.request_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    if created:
        await start_jobs(services, stored.id)
    if hold:
        await wait_until_done(channels, services, stored.id, services.settings.sync_wait_s)
        stored = await services.jobs.get(stored.id) or stored
    return stored


class CharacterController(Controller):
    path = "/v1/characters"
    before_request = client_auth
    tags = ["characters"]

    @post("", operation_id="createCharacter", status_code=200)
    async def create(
        self,
        request: Request,
        services: NamedDependency[Resources],
        channels: NamedDependency[ChannelsPlugin],
    ) -> CharacterObject:
        fields = await read_fields(request)
        return character_of(await submit_character(request, services, channels, fields))

    @get("", operation_id="listCharacters")
    async def list_characters(
        self,
        request: Request,
        services: NamedDependency[Resources],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 100,
    ) -> CharacterList:
        """The caller's finished characters, newest first."""
        rows = await CharacterRepo(services.sessions).list_for_owner(request.state.owner, limit=limit)
        return CharacterList(data=[character_of_row(character, model) for character, model in rows])
