"""Models, liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from api.auth import client_auth
from api.schemas import Model, ModelList
from shared.modelids import list_models
from shared.resources import Resources

# Fixed so the list is the same on every replica and every call.
_MODELS_CREATED = 1759276800


class ModelController(Controller):
    path = "/v1/models"
    before_request = client_auth
    tags = ["models"]

    @get("", operation_id="listModels")
    async def list_models(self) -> ModelList:
        return ModelList(data=[Model(id=model_id, created=_MODELS_CREATED) for model_id in list_models()])


class HealthController(Controller):
    tags = ["operations"]
    include_in_schema = False

    @get("/healthz", operation_id="healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", operation_id="readyz")
    async def readyz(self, services: NamedDependency[Resources]) -> Response[dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            async with services.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
        try:
            await services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503
        )
