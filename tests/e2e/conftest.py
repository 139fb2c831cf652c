from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import asyncpg
import openai
import pytest

from tests.e2e.stack import Stack
from tests.infra import Services


@pytest.fixture(scope="module")
def make_stack(services: Services) -> Iterator[Callable[..., Stack]]:
    """Starts stacks for a test module and stops them all when it ends."""
    started: list[Stack] = []

    def start(name: str, **kwargs) -> Stack:
        stack = Stack(services, name, **kwargs)
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.stop()


def job_row(stack: Stack, job_id: str) -> dict:
    """The job as Postgres has it (the truth the API answers from)."""

    async def fetch() -> dict:
        url = stack.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(url)
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        try:
            row = await connection.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        finally:
            await connection.close()
        return dict(row) if row else {}

    return asyncio.run(fetch())


def execute(stack: Stack, sql: str, *args: object) -> str:
    """Changes the database behind the stack's back, as an operator or a bad migration might."""

    async def run() -> str:
        url = stack.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(url)
        try:
            return await connection.execute(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def sdk(stack: Stack) -> openai.OpenAI:
    """The official SDK pointed at the stack, without retries that would hide failures."""
    return openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key=stack.api_key, max_retries=0, timeout=120)
