from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.settings import Settings

CLIENT = {"Authorization": "Bearer sk-test-one"}
OTHER_CLIENT = {"Authorization": "Bearer sk-test-two"}
ADMIN = {"Authorization": "Bearer admin-test"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client
