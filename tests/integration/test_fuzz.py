"""A schema-driven fuzz run: schemathesis reads /schema/openapi.json from the app and sends every operation
generated requests, valid ones and ones that break the schema (wrong types, missing fields, odd strings), with
the client or admin key. No answer may be a 500, and every refusal has the contract's error shape.

The app runs in-process on real Postgres and Redis, with its own database and key prefix (the fuzz adds,
changes and deletes accounts and keys). No worker and no upstream run here, so three 5xx answers are the
environment's and are accepted, in the error shape, on the operations they belong to: 504 ``timeout`` for
image requests that wait SYNC_WAIT_S for pictures nobody makes, and 502 ``upstream_error`` / 503
``no_available_account`` for the query routes, which read the upstream.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from api.app import create_app
from shared.settings import Settings
from tests import strict
from tests.infra import Services
from tests.integration.conftest import ADMIN, CLIENT, set_pool_plan

EXAMPLES_PER_OPERATION = 20
# (operation id, status) -> the error codes the environment explains (see the module docstring).
NO_UPSTREAM = {502: {"upstream_error"}, 503: {"no_available_account"}}
ENVIRONMENT_5XX: dict[str, dict[int, set[str]]] = {
    "createImage": {504: {"timeout"}},
    "editImage": {504: {"timeout"}},
    **{
        operation: NO_UPSTREAM
        for operation in (
            "getFeed",
            "getProfile",
            "getUserFeed",
            "searchCharacters",
            "getInviteCode",
            "getTokenProfileFeed",
        )
    },
}


# The document /schema/openapi.json serves; the fixture checks that the app under test serves the same one.
SCHEMA = create_app(Settings(encryption_key="schema only")).openapi_schema.to_schema()
schema = schemathesis.openapi.from_dict(SCHEMA)


@pytest.fixture(scope="module")
def fuzz_settings(services: Services, settings: Settings) -> Iterator[Settings]:
    fuzz = msgspec.structs.replace(
        settings,
        database_url=services.create_database(),
        redis_prefix=f"{services.prefix}fuzz{secrets.token_hex(2)}:",
        # Held requests (async_mode=false, chat, images) give up at once: no worker finishes anything here.
        sync_wait_s=0.05,
        query_cache_s=0,
    )
    asyncio.run(set_pool_plan(fuzz, "chatgpt_pro"))
    app = create_app(fuzz)
    try:
        served = asgi.get_client(app).get("http://testserver/schema/openapi.json")
        assert served.status_code == 200 and served.json() == SCHEMA
    finally:
        asgi.shutdown_lifespans()
    yield fuzz


@pytest.fixture
def fuzz_app(fuzz_settings: Settings) -> Any:
    # One app per operation: schemathesis runs an app's lifespan around each test, and a Litestar app's
    # lifespan runs once in production, so it is not started twice here either.
    return create_app(fuzz_settings)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_every_refusal_in_the_error_shape(case: Any, fuzz_app: Any) -> None:
    if case.operation.path == "/v1/chat/completions" and isinstance(case.body, dict):
        # A stream follows its job until it ends, and no worker ends it here.
        case.body.pop("stream", None)
    # The generated Authorization header (from the security schemes) gives way to a real key.
    key = ADMIN if case.operation.path.startswith("/api/") else CLIENT
    case.headers = {
        name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"
    }
    case.headers.update(key)
    response = case.call(app=fuzz_app, timeout=30)
    status = response.status_code
    where = f"{case.operation.method.upper()} {case.operation.path} → {status}: {response.text[:300]}"
    if status < 400:
        return
    error = strict.error(response.content)  # raises unless exactly {"error": {message, type, param, code}}
    assert status != 401, f"the right key was refused: {where}"
    if status >= 500:
        allowed = ENVIRONMENT_5XX.get(case.operation.definition.raw.get("operationId", ""), {})
        assert error.code in allowed.get(status, set()), f"server error: {where}"
