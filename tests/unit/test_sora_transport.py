"""The Sora client's transport against real sockets: what a failure means for a create, proxies, bodies.

Each server here is a few lines of asyncio on a free local port, so a test sees exactly the bytes a
misbehaving upstream (or proxy) would send.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from shared.settings import Settings
from shared.sora import errors
from shared.sora.client import Credentials, SoraClient

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A server on a free port; yields the port and a list that counts its connections."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], connections


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    line, *fields = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields if f)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return line, headers, body


def answer(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", "content-type: application/json", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def sora_at(port: int, timeout_s: float = 5.0) -> AsyncIterator[SoraClient]:
    """A Sora client whose backend is the local server on ``port``."""
    sora = SoraClient(
        Settings(
            sora_backend_url=f"http://127.0.0.1:{port}/backend",
            sora_web_url=f"http://127.0.0.1:{port}",
            upstream_timeout_s=timeout_s,
            media_allowed_hosts="127.0.0.1",
        )
    )
    try:
        yield sora
    finally:
        await sora.aclose()


async def pending_fails(port: int, timeout_s: float = 5.0) -> errors.UpstreamError:
    """The error a pending poll of the server on ``port`` ends with."""
    async with sora_at(port, timeout_s) as sora:
        with pytest.raises(errors.UpstreamError) as caught:
            await sora.pending(CREDS)
    return caught.value


CREDS = Credentials(account_id=1, access_token="at-1")


async def test_answers_reuse_one_connection_and_send_what_the_client_set() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            seen.append(request)
            writer.write(answer(200, b'[{"id": "task_1", "status": "running"}]'))
            await writer.drain()

    async with serving(handler) as (port, connections), sora_at(port) as sora:
        for _ in range(3):
            assert await sora.pending(CREDS) == [{"id": "task_1", "status": "running"}]
    assert len(connections) == 1
    line, headers, _ = seen[0]
    assert line.startswith("GET /backend/nf/pending")
    assert headers["authorization"] == "Bearer at-1"
    assert headers["user-agent"].startswith("Sora/")


async def test_a_gzip_answer_is_decoded() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            answer(200, gzip.compress(b'{"rate_limit_and_credit_balance": {}}'), "content-encoding: gzip")
        )
        await writer.drain()

    async with serving(handler) as (port, _), sora_at(port) as sora:
        assert await sora.nf_check(CREDS) == {"rate_limit_and_credit_balance": {}}


async def test_a_refused_connection_was_never_sent() -> None:
    async with serving(read_request) as (port, _):  # a port that was free a moment ago
        pass
    error = await pending_fails(port)
    assert isinstance(error, errors.UpstreamUnreachable) and error.maybe_processed is False


async def test_a_connection_dropped_after_the_request_may_have_been_processed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # then close without a word

    async with serving(handler) as (port, _):
        error = await pending_fails(port)
    assert isinstance(error, errors.UpstreamUnreachable) and error.maybe_processed is True


async def test_an_answer_that_never_comes_is_a_timeout_that_may_have_been_processed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(handler) as (port, _):
        error = await pending_fails(port, timeout_s=0.3)
    assert isinstance(error, errors.UpstreamTimeout) and error.maybe_processed is True


async def test_an_account_proxy_carries_the_request_with_its_credentials() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(200, b"[]"))
        await writer.drain()

    # The backend itself (port 9) is never reached: the proxy answers.
    async with serving(proxy) as (port, _), sora_at(9) as sora:
        creds = Credentials(account_id=1, access_token="at-1", proxy_url=f"http://user:pw@127.0.0.1:{port}")
        assert await sora.pending(creds) == []
    line, headers, _ = seen[0]
    assert line.startswith("GET http://127.0.0.1:9/backend/nf/pending")
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()
    assert headers["authorization"] == "Bearer at-1"


async def test_a_json_body_arrives_whole() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(200, b'{"id": "task_9"}'))
        await writer.drain()

    async with serving(handler) as (port, _), sora_at(port) as sora:
        await sora._call(CREDS, "POST", "/nf/create", json={"prompt": "a cat", "n_frames": 300})
    line, headers, body = seen[0]
    assert line.startswith("POST /backend/nf/create")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"prompt": "a cat", "n_frames": 300}


async def test_media_streams_and_stops_at_its_limit() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(200, blob))
            await writer.drain()

    async with serving(handler) as (port, _), sora_at(port) as sora:
        url = f"http://127.0.0.1:{port}/media/video.mp4"
        async with sora.media(url, max_bytes=len(blob)) as chunks:
            got = b"".join([chunk async for chunk in chunks])
        assert got == blob
        with pytest.raises(errors.UpstreamError):
            async with sora.media(url, max_bytes=len(blob) // 2) as chunks:
                async for _ in chunks:
                    pass
