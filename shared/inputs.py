"""Inputs sent by users (reference images, character videos): inline (base64, data URL, upload) or fetched
from a URL.

Fetching a URL on a user's behalf is a server-side request forgery risk, so every
URL (and every redirect hop) must name a public address before we connect, and we
connect to the exact address that was checked (pinned), so a DNS answer that
changes between the check and the connection cannot redirect us inward.

Decisions:

* ``http`` and ``https`` are both accepted: the danger is the address, not the
  scheme, and some image hosts still serve plain http.
* Any port is accepted: internal services are refused by address whatever the
  port, and public image hosts on odd ports exist.
* IPv4 addresses must be written as four decimal numbers. Other spellings
  (``2130706433``, ``0x7f.1``, ``127.1``) are what browsers and ``getaddrinfo``
  quietly accept, so they are refused rather than guessed at.
* Single-label names and names under ``localhost``, ``local``, ``internal`` and
  ``home.arpa`` are refused before resolving: they are never public, and refusing
  them does not depend on what the local resolver happens to answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection

import httpx
import msgspec

from shared.errors import InvalidParam

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VIDEO_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3

Resolver = Callable[[str, int], Awaitable[list[str]]]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_KINDS = "a PNG, JPEG, WebP or GIF image"


class InputImage(msgspec.Struct, frozen=True):
    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.content_type]


def sniff_image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _invalid_image(param: str, message: str) -> InvalidParam:
    return InvalidParam(message, param=param, code="invalid_image")


def _too_big_message(max_bytes: int, noun: str = "image") -> str:
    mib, rest = divmod(max_bytes, 1024 * 1024)
    limit = f"{mib} MB" if mib and not rest else f"{max_bytes} bytes"
    return f"the {noun} is larger than {limit}"


def image_from_bytes(data: bytes, *, param: str, max_bytes: int = MAX_IMAGE_BYTES) -> InputImage:
    if not data:
        raise _invalid_image(param, f"{param} is empty")
    if len(data) > max_bytes:
        raise _invalid_image(param, f"{param}: {_too_big_message(max_bytes)}")
    content_type = sniff_image_type(data)
    if content_type is None:
        raise _invalid_image(param, f"{param} is not {_KINDS}")
    return InputImage(data=bytes(data), content_type=content_type)


_WHITESPACE = re.compile(r"\s+")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def _decode_inline(
    value: str, *, param: str, max_bytes: int, noun: str, invalid: Callable[[str, str], InvalidParam]
) -> bytes:
    """The bytes of a data URL or bare base64 (standard or URL-safe alphabet, padding optional)."""
    payload = value.strip()
    if payload[:5].lower() == "data:":
        header, comma, payload = payload.partition(",")
        if not comma or ";base64" not in header.lower():
            raise invalid(param, f"{param} must be a base64 data URL")
    payload = _WHITESPACE.sub("", payload).translate(_URLSAFE_TO_STANDARD).rstrip("=")
    # Refuse by length before decoding so an oversized value never becomes a second large buffer.
    if len(payload) * 3 // 4 > max_bytes:
        raise invalid(param, f"{param}: {_too_big_message(max_bytes, noun)}")
    if len(payload) % 4 == 1:
        raise invalid(param, f"{param} is not valid base64")
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(param, f"{param} is not valid base64") from None


def decode_inline_image(value: str, *, param: str, max_bytes: int = MAX_IMAGE_BYTES) -> InputImage:
    """Decode a data URL or bare base64; the declared media type is ignored in favour of the bytes."""
    data = _decode_inline(value, param=param, max_bytes=max_bytes, noun="image", invalid=_invalid_image)
    return image_from_bytes(data, param=param, max_bytes=max_bytes)


# Character videos -------------------------------------------------------------------------


class InputVideo(msgspec.Struct, frozen=True):
    """A character's source video. Only MP4 is accepted: it is what the upstream's cameo upload takes."""

    data: bytes
    content_type: str = "video/mp4"


def is_mp4(data: bytes) -> bool:
    """An ISO base media file (MP4, M4V, MOV family) starts with a box whose type is ``ftyp``."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


def _invalid_video(param: str, message: str) -> InvalidParam:
    return InvalidParam(message, param=param, code="invalid_video")


def video_from_bytes(data: bytes, *, param: str, max_bytes: int = MAX_VIDEO_BYTES) -> InputVideo:
    if not data:
        raise _invalid_video(param, f"{param} is empty")
    if len(data) > max_bytes:
        raise _invalid_video(param, f"{param}: {_too_big_message(max_bytes, 'video')}")
    if not is_mp4(data):
        raise _invalid_video(param, f"{param} is not an MP4 video")
    return InputVideo(data=bytes(data))


def decode_inline_video(value: str, *, param: str, max_bytes: int = MAX_VIDEO_BYTES) -> InputVideo:
    """Decode a data URL or bare base64 into an MP4; the declared media type is ignored."""
    data = _decode_inline(value, param=param, max_bytes=max_bytes, noun="video", invalid=_invalid_video)
    return video_from_bytes(data, param=param, max_bytes=max_bytes)


# Explicit lists, because what ``ipaddress`` calls private or global has changed between Python versions.
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
# Only 2000::/3 is assigned as global unicast; everything else in IPv6 is local, special or unassigned.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # protocol assignments, including Teredo, which tunnels to arbitrary IPv4
        "2001:db8::/32",
        "3fff::/20",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not any(ip in net for net in _REFUSED_V4)


def is_public_address(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        return _is_public_v4(addr)
    if addr.scope_id:
        return False
    # Addresses that carry an IPv4 address are judged by it: they reach it through the host's stack,
    # a NAT64 gateway or a 6to4 relay.
    if addr.ipv4_mapped is not None:
        return _is_public_v4(addr.ipv4_mapped)
    if addr in _NAT64:
        return _is_public_v4(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr.sixtofour is not None:
        return _is_public_v4(addr.sixtofour)
    return addr in _GLOBAL_UNICAST_V6 and addr.is_global and not any(addr in net for net in _REFUSED_V6)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _not_allowed(param: str, message: str) -> InvalidParam:
    return InvalidParam(message, param=param, code="url_not_allowed")


_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "home.arpa")


def _check_hostname(host: str, param: str) -> None:
    name = host.removesuffix(".")
    labels = name.split(".")
    # The WHATWG URL rule: a host whose last label is a number is an IPv4 address, in whatever base.
    if _NUMERIC_LABEL.match(labels[-1]):
        raise _not_allowed(param, f"{param}: IP addresses must be written as four decimal numbers")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _not_allowed(param, f"{param} does not have a valid host name")
    if len(labels) < 2 or any(name == s or name.endswith("." + s) for s in _PRIVATE_SUFFIXES):
        raise _not_allowed(param, f"{param} names a local host")


def _parse(url: str, param: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise _not_allowed(param, f"{param} is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise _not_allowed(param, f"{param} must be an http or https URL")
    if parsed.userinfo:
        raise _not_allowed(param, f"{param} must not contain a user name or password")
    if not parsed.raw_host:
        raise _not_allowed(param, f"{param} has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise _not_allowed(param, f"{param} has an invalid port")
    return parsed


async def _resolve_checked(
    url: httpx.URL, param: str, resolver: Resolver, allow: Collection[str]
) -> list[str]:
    host = url.raw_host.decode("ascii").lower()
    local = _not_allowed(param, f"{param} resolves to a private or local address")
    if ":" in host:  # httpx strips the brackets of an IPv6 literal
        if "%" in host or not is_public_address(host):
            raise local
        return [str(ipaddress.IPv6Address(host))]
    try:
        literal = ipaddress.IPv4Address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public_v4(literal):
            raise local
        return [host]

    _check_hostname(host, param)
    unresolvable = InvalidParam(
        f"{param}: the host name does not resolve", param=param, code="url_unresolvable"
    )
    try:
        answers = await resolver(host, url.port or (443 if url.scheme == "https" else 80))
    except OSError:
        raise unresolvable from None
    if not answers:
        raise unresolvable
    exempt = {ipaddress.ip_address(a) for a in allow}
    addresses: list[str] = []
    for answer in answers:
        try:
            addr = ipaddress.ip_address(answer)
        except ValueError:
            raise local from None
        # One refused answer refuses the host: which answer a later connection would use is not ours to pick.
        if addr not in exempt and not is_public_address(answer):
            raise local
        addresses.append(str(addr))
    return list(dict.fromkeys(addresses))


async def check_url(
    url: str, *, param: str, resolver: Resolver = system_resolver, allow: Collection[str] = ()
) -> list[str]:
    """Return the addresses ``url`` may be fetched from, or refuse it.

    ``allow`` names resolved addresses to accept anyway; it exists for tests that
    serve from loopback, and never exempts an address written literally in the URL.
    """
    return await _resolve_checked(_parse(url, param), param, resolver, allow)


def _fetch_failed(param: str, message: str) -> InvalidParam:
    return InvalidParam(f"{param}: {message}", param=param, code="fetch_failed")


class _Kind(msgspec.Struct, frozen=True):
    """What a fetch downloads: the word in its messages and the types it asks the server for."""

    noun: str
    accept: str


_IMAGE = _Kind("image", "image/png, image/jpeg, image/webp, image/gif")
_VIDEO = _Kind("video", "video/mp4")


def _headers(kind: _Kind) -> dict[str, str]:
    return {
        "accept": kind.accept,
        # Compressed bodies could expand far beyond the byte cap inside a single chunk.
        "accept-encoding": "identity",
        "user-agent": f"sora-gateway-{kind.noun}-fetch/1",
    }


async def _open(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[str], param: str, kind: _Kind
) -> httpx.Response:
    host = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" and ":" not in host else {}
    for address in addresses:
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={**_headers(kind), "host": url.netloc.decode("ascii")},
            extensions=extensions,
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError:
            continue  # nothing was sent yet, so the next address is safe to try
        except httpx.HTTPError:
            break
    raise _fetch_failed(param, f"could not download the {kind.noun}")


async def _read_capped(response: httpx.Response, param: str, max_bytes: int, noun: str) -> bytes:
    too_large = InvalidParam(
        f"{param}: {_too_big_message(max_bytes, noun)}", param=param, code="fetch_too_large"
    )
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    if response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        raise _fetch_failed(param, "the server sent a compressed body although none was asked for")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def _fetch(
    url: str,
    param: str,
    max_bytes: int,
    timeout_s: float,
    resolver: Resolver,
    transport: httpx.AsyncBaseTransport | None,
    allow: Collection[str],
    kind: _Kind,
) -> bytes:
    current = _parse(url, param)
    client_options = (
        {"transport": transport}
        if transport is not None
        # No keep-alive: a redirect to another name on the same address must not reuse a
        # connection whose certificate was checked for the first name.
        else {"limits": httpx.Limits(max_keepalive_connections=0)}
    )
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=timeout_s, **client_options
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            addresses = await _resolve_checked(current, param, resolver, allow)
            response = await _open(client, current, addresses, param, kind)
            try:
                if response.is_redirect:
                    try:
                        current = _parse(str(current.join(response.headers["location"])), param)
                    except httpx.InvalidURL:
                        raise _fetch_failed(param, "the server redirected to an invalid URL") from None
                    continue
                if not response.is_success:
                    raise _fetch_failed(param, f"the server answered HTTP {response.status_code}")
                return await _read_capped(response, param, max_bytes, kind.noun)
            except httpx.HTTPError:
                raise _fetch_failed(param, f"could not download the {kind.noun}") from None
            finally:
                await response.aclose()
    raise _fetch_failed(param, f"more than {MAX_REDIRECTS} redirects")


async def _fetch_within(
    url: str,
    param: str,
    max_bytes: int,
    timeout_s: float,
    resolver: Resolver,
    transport: httpx.AsyncBaseTransport | None,
    allow: Collection[str],
    kind: _Kind,
) -> bytes:
    try:
        async with asyncio.timeout(timeout_s):
            return await _fetch(url, param, max_bytes, timeout_s, resolver, transport, allow, kind)
    except TimeoutError:
        raise _fetch_failed(param, f"the {kind.noun} did not download within {timeout_s:g} s") from None


async def fetch_image(
    url: str,
    *,
    param: str,
    max_bytes: int = MAX_IMAGE_BYTES,
    timeout_s: float = 20.0,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
    allow: Collection[str] = (),
) -> InputImage:
    """Download an image from a public URL; ``transport`` and ``allow`` exist for tests only."""
    data = await _fetch_within(url, param, max_bytes, timeout_s, resolver, transport, allow, _IMAGE)
    return image_from_bytes(data, param=param, max_bytes=max_bytes)


async def fetch_video(
    url: str,
    *,
    param: str,
    max_bytes: int = MAX_VIDEO_BYTES,
    timeout_s: float = 60.0,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
    allow: Collection[str] = (),
) -> InputVideo:
    """Download an MP4 from a public URL, with the same address checks and pinning as images."""
    data = await _fetch_within(url, param, max_bytes, timeout_s, resolver, transport, allow, _VIDEO)
    return video_from_bytes(data, param=param, max_bytes=max_bytes)
