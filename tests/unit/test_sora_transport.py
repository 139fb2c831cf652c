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


def client_for(port: int, timeout_s: float = 5.0) -> SoraClient:
    return SoraClient(
        Settings(
            sora_backend_url=f"http://127.0.0.1:{port}/backend",
            sora_web_url=f"http://127.0.0.1:{port}",
            upstream_timeout_s=timeout_s,
            media_allowed_hosts="127.0.0.1",
        )
    )


CREDS = Credentials(account_id=1, access_token="at-1")


async def test_answers_reuse_one_connection_and_send_what_the_client_set() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            seen.append(request)
            writer.write(answer(200, b'[{"id": "task_1", "status": "running"}]'))
            await writer.drain()

    async with serving(handler) as (port, connections):
        sora = client_for(port)
        try:
            for _ in range(3):
                assert await sora.pending(CREDS) == [{"id": "task_1", "status": "running"}]
        finally:
            await sora.aclose()
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

    async with serving(handler) as (port, _):
        sora = client_for(port)
        try:
            assert await sora.nf_check(CREDS) == {"rate_limit_and_credit_balance": {}}
        finally:
            await sora.aclose()


async def test_a_refused_connection_was_never_sent() -> None:
    async with serving(read_request) as (port, _):  # a port that was free a moment ago
        pass
    sora = client_for(port)
    try:
        with pytest.raises(errors.UpstreamUnreachable) as caught:
            await sora.pending(CREDS)
    finally:
        await sora.aclose()
    assert caught.value.maybe_processed is False


async def test_a_connection_dropped_after_the_request_may_have_been_processed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # then close without a word

    async with serving(handler) as (port, _):
        sora = client_for(port)
        try:
            with pytest.raises(errors.UpstreamUnreachable) as caught:
                await sora.pending(CREDS)
        finally:
            await sora.aclose()
    assert caught.value.maybe_processed is True


async def test_an_answer_that_never_comes_is_a_timeout_that_may_have_been_processed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(handler) as (port, _):
        sora = client_for(port, timeout_s=0.3)
        try:
            with pytest.raises(errors.UpstreamTimeout) as caught:
                await sora.pending(CREDS)
        finally:
            await sora.aclose()
    assert caught.value.maybe_processed is True


async def test_an_account_proxy_carries_the_request_with_its_credentials() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(200, b"[]"))
        await writer.drain()

    async with serving(proxy) as (port, _):
        sora = client_for(9)  # the backend itself is never reached: the proxy answers
        creds = Credentials(account_id=1, access_token="at-1", proxy_url=f"http://user:pw@127.0.0.1:{port}")
        try:
            assert await sora.pending(creds) == []
        finally:
            await sora.aclose()
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

    async with serving(handler) as (port, _):
        sora = client_for(port)
        try:
            await sora._call(CREDS, "POST", "/nf/create", json={"prompt": "a cat", "n_frames": 300})
        finally:
            await sora.aclose()
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

    async with serving(handler) as (port, _):
        sora = client_for(port)
        url = f"http://127.0.0.1:{port}/media/video.mp4"
        try:
            async with sora.media(url, max_bytes=len(blob)) as chunks:
                got = b"".join([chunk async for chunk in chunks])
            assert got == blob
            with pytest.raises(errors.UpstreamError):
                async with sora.media(url, max_bytes=len(blob) // 2) as chunks:
                    async for _ in chunks:
                        pass
        finally:
            await sora.aclose()
