from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.infra import ROOT, Services
from tests.s3 import MotoServer


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    found = Services()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """A real S3-protocol server (moto in server mode), started once for the tests that ask for it."""
    server = MotoServer(ROOT / "test-artifacts" / "moto").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(services: Services) -> str:
    return services.create_database()


@pytest.fixture(scope="session")
def settings(services: Services, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=services.redis_url,
        redis_prefix=services.prefix,
        api_keys="sk-test-one,sk-test-two",
        admin_key="admin-test",
        encryption_key=secrets.token_hex(16),
        media_dir=str(tmp_path_factory.mktemp("media")),
        sora_backend_url="http://127.0.0.1:9/backend",
        public_base_url="http://testserver.local",
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
