"""httpx on top of aiohttp's connection pool and HTTP parser, for the calls to the Sora backend.

httpx keeps what the client relies on (requests and responses, timeouts, streaming, its exceptions); aiohttp
moves the bytes. httpx's own pool (httpcore) checks every pooled connection on each request and parses in
Python: about 1.6 ms of CPU a request at twenty at a time on this project's machine, against about 0.3 ms
here. A worker spends most of its time on these requests (a ``pending`` poll per busy account per tick).

aiohttp's errors become httpx's, so ``errors.classify_transport`` still tells a request that never left
(it cannot have created anything upstream) from one that may have been processed: only a failure to
connect counts as never sent.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx

CHUNK_BYTES = 256 * 1024


def _as_httpx(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx exception for an aiohttp one; anything else comes back as it is."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        kind = httpx.ProxyError
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientError | OSError):
        kind = httpx.ReadError
    else:
        return exc
    return kind(message, request=request)


def _proxy_headers(proxy: httpx.Proxy) -> dict[str, str]:
    """The proxy's own headers, with its ``user:password`` as Basic Proxy-Authorization."""
    headers = dict(proxy.headers)
    if proxy.auth:
        token = base64.b64encode(":".join(proxy.auth).encode()).decode()
        headers.setdefault("Proxy-Authorization", f"Basic {token}")
    return headers


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, OSError) as exc:
        raise _as_httpx(exc, request) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end gives its connection back to the pool; one left unread closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its own pool, no cookie jar), optionally through an HTTP proxy.

    The session is made on first use, inside the event loop that uses it.
    """

    def __init__(self, *, proxy: str | None = None, max_connections: int = 200, keepalive_s: float = 5.0):
        self._proxy = httpx.Proxy(proxy) if proxy else None
        self._proxy_headers = _proxy_headers(self._proxy) if self._proxy else None
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        # (scheme, host) → the environment's proxy for it and that proxy's headers, or None.
        self._env_proxies: dict[tuple[str, str], tuple[httpx.Proxy, dict[str, str]] | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=self._keepalive_s)
            # Cookies are the caller's business (each request carries its account's own), never shared.
            # aiohttp's trust_env reads the environment on every request; _proxy_for reads it once a host.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _proxy_for(self, url: httpx.URL) -> tuple[httpx.Proxy, dict[str, str]] | None:
        """The transport's proxy and its headers; without one, HTTP(S)_PROXY and NO_PROXY, as httpx applies
        them, read once a host."""
        if self._proxy is not None and self._proxy_headers is not None:
            return self._proxy, self._proxy_headers
        key = (url.scheme, url.host)
        if key not in self._env_proxies:
            proxies = urllib.request.getproxies()
            chosen = proxies.get(url.scheme) or proxies.get("all")
            if chosen and urllib.request.proxy_bypass(url.host):
                chosen = None
            found = httpx.Proxy(chosen) if chosen else None
            self._env_proxies[key] = (found, _proxy_headers(found)) if found else None
        return self._env_proxies[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "transfer-encoding"]
        proxy, proxy_headers = self._proxy_for(request.url) or (None, None)
        if proxy_headers and request.url.scheme == "http":
            # Plain HTTP goes to the proxy as is (no CONNECT, which is where aiohttp sends proxy_headers).
            headers.extend(proxy_headers.items())
        with _mapped(request):
            response = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, as it would its own responses
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                proxy=str(proxy.url) if proxy else None,
                proxy_headers=proxy_headers,
            )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
