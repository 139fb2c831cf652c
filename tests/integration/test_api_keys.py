"""Client keys made through the admin API: shown once, stored hashed, rate limited, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api import auth
from api.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.models import Account, ApiKey, Job, JobState
from shared.secrets import key_fingerprint
from shared.settings import Settings
from shared.storage import LocalStorage
from shared.timeutil import utcnow
from tests import strict
from tests.integration.conftest import ADMIN, CLIENT, OTHER_CLIENT

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


# --- Access: scopes, isolation between keys, shared rate limits, constant-time comparison ------------------

SCHEMA = create_app(Settings(encryption_key="schema only")).openapi_schema.to_schema()
ADMIN_ROUTES = sorted(
    (
        method.upper(),
        path.replace("{account_id}", "1").replace("{key_id}", "1").replace("{job_id}", "video_x"),
    )
    for path, operations in SCHEMA["paths"].items()
    if path.startswith("/api/")
    for method in operations
)


async def test_client_keys_get_403_on_every_admin_route(client: AsyncTestClient) -> None:
    made = (await client.post("/api/keys", json={"label": "scoped"}, headers=ADMIN)).json()["key"]
    assert len(ADMIN_ROUTES) >= 15  # tokens, keys and jobs, every method
    for key in (CLIENT, OTHER_CLIENT, bearer(made), {"Authorization": made}):
        for method, path in ADMIN_ROUTES:
            response = await client.request(method, path, json={}, headers=key)
            assert response.status_code == 403, (method, path, response.text)
            error = strict.error(response.content)
            assert (error.type, error.code) == ("permission_error", "forbidden")
    # The admin key is no client key: 401 there (never 403, which would tell it exists).
    assert (await client.get("/v1/models", headers=ADMIN)).status_code == 401
    assert (await client.get("/api/tokens", headers=bearer("sk-wrong"))).status_code == 401


async def _own_completed_video(settings: Settings, owner_key: str) -> str:
    """A finished video of ``owner_key``, as the worker leaves it (row completed, media in storage)."""
    job_id = "video_" + secrets.token_hex(16)

    async def body():
        yield b"\x00\x00\x00\x18ftypmp42 secret frames"

    await LocalStorage(settings.media_dir).write(f"videos/{job_id}/video.mp4", body())
    now = utcnow()
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            session.add(
                Job(
                    id=job_id,
                    kind="video",
                    owner=key_fingerprint(owner_key),
                    state=JobState.COMPLETED,
                    progress=100,
                    model="sora-2",
                    prompt="mine",
                    seconds=10,
                    size="720x1280",
                    generation_id="gen_" + secrets.token_hex(8),
                    account_id=1,
                    media_key=f"videos/{job_id}/video.mp4",
                    completed_at=now,
                    expires_at=now + timedelta(hours=1),
                    deadline_at=now + timedelta(hours=1),
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    return job_id


async def test_a_client_sees_only_its_own_jobs(client: AsyncTestClient, settings: Settings) -> None:
    made = (await client.post("/api/keys", json={"label": "owner c"}, headers=ADMIN)).json()["key"]
    owners = {"env": CLIENT, "made": bearer(made)}
    strangers = {"env": [OTHER_CLIENT, bearer(made)], "made": [CLIENT, OTHER_CLIENT]}
    for name, owner in owners.items():
        raw_key = owner["Authorization"].removeprefix("Bearer ")
        finished = await _own_completed_video(settings, raw_key)
        queued = (await client.post("/v1/videos", json={"prompt": f"private {name}"}, headers=owner)).json()[
            "id"
        ]
        character = (await client.post("/v1/characters", json={"from_task": finished}, headers=owner)).json()[
            "id"
        ]
        # The owner sees all of it.
        assert (await client.get(f"/v1/videos/{finished}/content", headers=owner)).status_code == 200
        assert (await client.get(f"/v1/videos/tasks/{character}", headers=owner)).status_code == 200
        for stranger in strangers[name]:
            for method, path in (
                ("GET", f"/v1/videos/{finished}"),
                ("GET", f"/v1/videos/{queued}"),
                ("GET", f"/v1/videos/tasks/{finished}"),
                ("GET", f"/v1/videos/tasks/{character}"),
                ("GET", f"/v1/videos/{finished}/content"),
                ("GET", f"/v1/videos/{finished}/content?variant=thumbnail"),
                ("GET", f"/v1/videos/{queued}/events"),
                ("GET", f"/v1/videos/{character}/events"),
                ("GET", f"/v1/videos?after={finished}"),
                ("DELETE", f"/v1/videos/{finished}"),
                ("POST", f"/v1/videos/{finished}/remix"),
            ):
                response = await client.request(method, path, json={"prompt": "steal"}, headers=stranger)
                assert response.status_code == 404, (method, path, response.text)
                assert strict.error(response.content).code == "not_found"
            # Nor can it build on them.
            taken = await client.post("/v1/characters", json={"from_task": finished}, headers=stranger)
            assert taken.status_code == 404, taken.text
            chained = await client.post(
                "/v1/videos", json={"prompt": "x", "character_from_task": finished}, headers=stranger
            )
            assert chained.status_code == 404, chained.text
            listed = (await client.get("/v1/videos?limit=100", headers=stranger)).json()["data"]
            assert not {finished, queued} & {video["id"] for video in listed}
        # And the owner's video is still there, untouched by the refused delete.
        assert (await client.get(f"/v1/videos/{finished}", headers=owner)).json()["status"] == "completed"


async def test_rate_limits_are_per_key_shared_by_every_process_and_store_nothing_when_hit(
    client: AsyncTestClient, settings: Settings
) -> None:
    first = (await client.post("/api/keys", json={"rate_limit": 2}, headers=ADMIN)).json()["key"]
    second = (await client.post("/api/keys", json={"rate_limit": 2}, headers=ADMIN)).json()["key"]
    async with AsyncTestClient(app=create_app(settings)) as other_process:
        assert (
            await client.post("/v1/videos", json={"prompt": "one"}, headers=bearer(first))
        ).status_code == 200
        # The second API process counts on from the first one's count (Redis).
        assert (
            await other_process.post("/v1/videos", json={"prompt": "two"}, headers=bearer(first))
        ).status_code == 200
        engine = create_engine(settings, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                count = sa.select(sa.func.count()).select_from(Job).where(Job.owner == key_fingerprint(first))
                before = (await session.execute(count)).scalar_one()
            limited = await other_process.post("/v1/videos", json={"prompt": "three"}, headers=bearer(first))
            async with create_sessionmaker(engine)() as session:
                after = (await session.execute(count)).scalar_one()
        finally:
            await engine.dispose()
        assert limited.status_code == 429 and after == before == 2
        assert strict.error(limited.content).code == "rate_limit_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 120
        # Another key, limited or not, has its own count.
        assert (
            await client.post("/v1/videos", json={"prompt": "b"}, headers=bearer(second))
        ).status_code == 200
        assert (await client.post("/v1/videos", json={"prompt": "env"}, headers=CLIENT)).status_code == 200


async def test_keys_are_compared_in_constant_time(
    client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert (await client.get("/v1/models", headers=CLIENT)).status_code == 200
    assert (b"sk-test-one", b"sk-test-one") in compared
    compared.clear()
    assert (await client.get("/api/keys", headers=ADMIN)).status_code == 200
    assert (b"admin-test", b"admin-test") in compared
    compared.clear()
    assert (await client.get("/api/keys", headers=bearer("admin-tesX"))).status_code == 401
    assert (b"admin-tesX", b"admin-test") in compared
    # A key made by an admin is compared with the API_KEYS (in constant time, like any key), then looked up
    # by its sha256: no copy of it is kept to compare with.
    made = (await client.post("/api/keys", json={}, headers=ADMIN)).json()["key"]
    compared.clear()
    assert (await client.get("/v1/models", headers=bearer(made))).status_code == 200
    assert {other for key, other in compared if key == made.encode()} == {b"sk-test-one", b"sk-test-two"}


async def test_account_secrets_are_stored_sealed(client: AsyncTestClient, settings: Settings) -> None:
    """Tokens given to POST /api/tokens are kept encrypted and answered masked; nothing stores them plain."""
    secrets_given = {
        "token": "at-" + secrets.token_urlsafe(24),
        "st": "st-" + secrets.token_urlsafe(24),
        "rt": "rt-" + secrets.token_urlsafe(24),
    }
    added = await client.post(
        "/api/tokens",
        json={**secrets_given, "proxy_url": "http://user:proxy-pass-42@proxy.example:8080"},
        headers=ADMIN,
    )
    assert added.status_code == 200, added.text
    answer = added.text + (await client.get("/api/tokens", headers=ADMIN)).text
    for value in (*secrets_given.values(), "proxy-pass-42"):
        assert value not in answer
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            row = (
                await session.execute(sa.select(Account).where(Account.id == added.json()["id"]))
            ).scalar_one()
    finally:
        await engine.dispose()
    stored = repr([getattr(row, column.name) for column in Account.__table__.columns])
    for value in secrets_given.values():
        assert value not in stored
    assert row.token_hash == hashlib.sha256(secrets_given["token"].encode()).hexdigest()
