"""Where the opaque ``openai-sentinel-token`` for create calls comes from.

The gateway never computes such values; an operator chooses a provider with
SENTINEL_PROVIDER: ``none`` (send nothing), ``static:<value>``, or the URL of
an HTTP service that answers ``POST`` with
``{"sentinel_token", "device_id", "user_agent"?, "cookie_header"?}``.
"""

from __future__ import annotations

import uuid

import httpx
import msgspec


class SentinelUnavailable(Exception):
    """The operator's provider failed: an operator fault, never the account's."""


class Sentinel(msgspec.Struct, frozen=True):
    sentinel_token: str
    device_id: str
    user_agent: str | None = None
    cookie_header: str | None = None


class SentinelProvider:
    async def get(self, access_token: str, proxy_url: str | None) -> Sentinel | None:
        return None

    async def invalidate(self, access_token: str) -> None:
        return None


class StaticSentinel(SentinelProvider):
    def __init__(self, value: str) -> None:
        self._value = Sentinel(sentinel_token=value, device_id=str(uuid.uuid4()))

    async def get(self, access_token: str, proxy_url: str | None) -> Sentinel | None:
        return self._value


class HttpSentinel(SentinelProvider):
    """Fetches a fresh value for every create call, as the web page does."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http

    async def get(self, access_token: str, proxy_url: str | None) -> Sentinel | None:
        try:
            response = await self._http.post(
                self._url, json={"access_token": access_token, "proxy_url": proxy_url}, timeout=15.0
            )
            response.raise_for_status()
            return msgspec.json.decode(response.content, type=Sentinel)
        except (httpx.HTTPError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SentinelUnavailable(f"sentinel provider failed: {type(exc).__name__}") from exc


def build_provider(spec: str, http: httpx.AsyncClient) -> SentinelProvider:
    spec = spec.strip()
    if spec in ("", "none"):
        return SentinelProvider()
    if spec.startswith("static:"):
        return StaticSentinel(spec.removeprefix("static:"))
    if spec.startswith(("http://", "https://")):
        return HttpSentinel(spec, http)
    raise ValueError(f"SENTINEL_PROVIDER must be none, static:<value> or an http(s) URL, not {spec!r}")
