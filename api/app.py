"""The Litestar application: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from redis.asyncio import Redis

from api import openapi
from api.auth import KeyCache
from api.errors import EXCEPTION_HANDLERS
from api.metrics import HttpMetrics, MetricsController
from api.routes.characters import CharacterController
from api.routes.chat import ChatController
from api.routes.console import ConsoleController, console_static, console_templates
from api.routes.images import ImageController
from api.routes.jobs import JobController
from api.routes.keys import KeyController
from api.routes.media import MediaController
from api.routes.queries import QueryController
from api.routes.system import HealthController, ModelController
from api.routes.tokens import TokenController
from api.routes.videos import VideoController
from api.watch import channels_plugin
from shared import logs
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings


def _services(state: State) -> Resources:
    return state.services


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.services = Resources.build(settings, create_celery(settings), db_pool_size=10)
        app.state.key_cache = KeyCache()
        try:
            yield
        finally:
            await app.state.services.aclose()

    # One pub/sub connection per process, shared by every waiting request and event stream; named, so
    # `CLIENT LIST` tells the API's relays apart from everything else on the server.
    channels = channels_plugin(
        Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, client_name=f"{settings.redis_prefix}api-events"
        )
    )

    app = Litestar(
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
            MetricsController,
            ConsoleController,
            console_static(),
        ],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        plugins=[channels],
        template_config=console_templates(),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Sora Gateway",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=openapi.COMPONENTS,
        ),
        request_max_body_size=settings.request_max_body_bytes,
        # Logging is ours (shared.logs: text or JSON lines); api.errors logs unexpected errors itself.
        logging_config=None,
    )
    openapi.document(app)
    # Outside the router, so requests no route matches are counted too (as OpenTelemetry's plugin does).
    app.asgi_handler = HttpMetrics(app.asgi_handler)
    return app
