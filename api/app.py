"""The Litestar application: wiring only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from redis.asyncio import Redis

from api.auth import KeyCache
from api.errors import EXCEPTION_HANDLERS
from api.routes.characters import CharacterController
from api.routes.chat import ChatController
from api.routes.images import ImageController
from api.routes.jobs import JobController
from api.routes.keys import KeyController
from api.routes.media import MediaController
from api.routes.queries import QueryController
from api.routes.system import HealthController, ModelController
from api.routes.tokens import TokenController
from api.routes.videos import VideoController
from api.watch import channels_plugin
from shared.logs import quiet_libraries
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings


def _services(state: State) -> Resources:
    return state.services


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    quiet_libraries()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.services = Resources.build(settings, create_celery(settings), db_pool_size=10)
        app.state.key_cache = KeyCache()
        try:
            yield
        finally:
            await app.state.services.aclose()

    # One pub/sub connection per process, shared by every waiting request and event stream.
    channels = channels_plugin(Redis.from_url(settings.redis_url, socket_connect_timeout=5))

    return Litestar(
        route_handlers=[
            VideoController,
            MediaController,
            ImageController,
            ChatController,
            CharacterController,
            ModelController,
            QueryController,
            TokenController,
            KeyController,
            JobController,
            HealthController,
        ],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        plugins=[channels],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Sora Gateway",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=32 * 1024 * 1024,
    )
