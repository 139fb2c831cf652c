"""Client keys made through the admin API: shown once, stored hashed, rate limited, revocable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from shared.db import create_engine, create_sessionmaker
from shared.models import ApiKey
from shared.settings import Settings
from tests.integration.conftest import ADMIN, CLIENT

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_made_key_is_shown_once_stored_hashed_and_works_like_an_env_key(
    client: AsyncTestClient, settings: Settings
) -> None:
    made = await client.post("/api/keys", json={"label": "team a"}, headers=ADMIN)
    assert made.status_code == 200, made.text
    body = made.json()
    key = body["key"]
    assert key.startswith("sk-gw-") and body["prefix"] == key[:12] and body["label"] == "team a"

    models = await client.get("/v1/models", headers=bearer(key))
    assert models.status_code == 200
    # The bare key, as OneAPI's proxy channel sends it.
    assert (await client.get("/v1/models", headers={"Authorization": key})).status_code == 200

    listed = (await client.get("/api/keys", headers=ADMIN)).json()["data"]
    mine = next(k for k in listed if k["id"] == body["id"])
    assert mine["key"] is None and mine["last_used_at"] is not None

    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            stored = (await session.execute(sa.select(ApiKey).where(ApiKey.id == body["id"]))).scalar_one()
    finally:
        await engine.dispose()
    assert key not in stored.key_hash and stored.prefix == key[:12]


async def test_a_made_key_is_a_client_key_only(client: AsyncTestClient) -> None:
    key = (await client.post("/api/keys", json={}, headers=ADMIN)).json()["key"]
    refused = await client.get("/api/tokens", headers=bearer(key))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert (await client.post("/api/keys", json={}, headers=CLIENT)).status_code == 403


async def test_a_rate_limited_key_gets_429_with_retry_after(client: AsyncTestClient) -> None:
    key = (await client.post("/api/keys", json={"rate_limit": 2}, headers=ADMIN)).json()["key"]
    statuses = []
    for _ in range(3):
        # An unknown model is refused after authentication, so nothing is created while counting.
        response = await client.post(
            "/v1/videos", json={"prompt": "x", "model": "no-such-model"}, headers=bearer(key)
        )
        statuses.append(response.status_code)
    assert statuses[:2] == [400, 400]
    assert statuses[2] == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "quota" not in error["message"].lower()
    assert 1 <= int(response.headers["retry-after"]) <= 61
    # Reads are not counted: polling a job never runs into the limit.
    assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200


async def test_a_revoked_key_is_refused(client: AsyncTestClient) -> None:
    made = (await client.post("/api/keys", json={"label": "leaked"}, headers=ADMIN)).json()
    assert (await client.get("/v1/models", headers=bearer(made["key"]))).status_code == 200
    revoked = await client.delete(f"/api/keys/{made['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = await client.get("/v1/models", headers=bearer(made["key"]))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert (await client.delete("/api/keys/999999", headers=ADMIN)).status_code == 404


async def test_key_input_is_validated(client: AsyncTestClient) -> None:
    for body, param in (({"rate_limit": 0}, "rate_limit"), ({"label": "x" * 201}, "label")):
        response = await client.post("/api/keys", json=body, headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    wrong_type = await client.post("/api/keys", json={"rate_limit": "lots"}, headers=ADMIN)
    assert wrong_type.status_code == 400
