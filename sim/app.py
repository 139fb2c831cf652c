"""``create_app()``: one Litestar app standing in for the Sora backend, web session, OAuth and media hosts."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from sim.backend import backend_router
from sim.config import SimConfig
from sim.control import control_router
from sim.errors import json_response, upstream_error
from sim.state import SimState
from sim.web import web_handlers

__all__ = ["SimConfig", "create_app"]


def create_app(config: SimConfig | None = None) -> Litestar:
    config = config or SimConfig.from_env()
    sim = SimState(config)
    prefix = config.backend_prefix.rstrip("/") + "/"

    def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        # Routes not simulated yet must still fail like upstream, so clients classify them the same way.
        if request.url.path.startswith(prefix) or config.backend_prefix == "/":
            code = "not_found" if exc.status_code == 404 else None
            return upstream_error(exc.status_code, str(exc.detail), code, headers=exc.headers)
        return json_response(
            {"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers
        )

    app = Litestar(
        route_handlers=[backend_router(sim), *web_handlers(sim), control_router(sim)],
        exception_handlers={HTTPException: http_error},
        openapi_config=None,
        debug=False,
    )
    # Exposed for in-process tests and embedding; HTTP clients use /_sim instead.
    app.state.sim = sim
    return app
