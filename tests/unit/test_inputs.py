from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.errors import InvalidParam
from shared.inputs import (
    MAX_IMAGE_BYTES,
    InputImage,
    check_url,
    decode_inline_image,
    fetch_image,
    fetch_video,
    image_from_bytes,
    is_public_address,
    sniff_image_type,
    system_resolver,
)

pytestmark = pytest.mark.anyio

# An odd length, so its base64 has padding to leave out.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\x00"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(64)
GIF = b"GIF89a" + bytes(64)
WEBP = b"RIFF" + (68).to_bytes(4, "little") + b"WEBPVP8 " + bytes(64)
MP4 = (24).to_bytes(4, "big") + b"ftypisom" + bytes(12) + b"\x00\x00\x00\x08mdat"
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1"


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


async def no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"should be refused before resolving {host!r}")


def refusal(exc_info: pytest.ExceptionInfo[InvalidParam], code: str, param: str = "image") -> InvalidParam:
    err = exc_info.value
    assert (err.code, err.param, err.status_code) == (code, param, 400)
    return err


# --- sniffing and inline images ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + bytes(8), "image/gif"),
        (WEBP, "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"\x89PN", None),
        (b"", None),
        (b"hello world", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    ],
)
def test_sniff_image_type(data, expected):
    assert sniff_image_type(data) == expected


@pytest.mark.parametrize(
    ("data", "content_type", "extension"),
    [
        (PNG, "image/png", "png"),
        (JPEG, "image/jpeg", "jpg"),
        (GIF, "image/gif", "gif"),
        (WEBP, "image/webp", "webp"),
    ],
)
def test_image_from_bytes(data, content_type, extension):
    image = image_from_bytes(data, param="image")
    assert image == InputImage(data=data, content_type=content_type)
    assert image.extension == extension


@pytest.mark.parametrize("data", [b"", b"just some text\n", b"%PDF-1.7\n"])
def test_image_from_bytes_refuses_non_images(data):
    with pytest.raises(InvalidParam) as exc_info:
        image_from_bytes(data, param="image")
    refusal(exc_info, "invalid_image")


def test_image_from_bytes_refuses_oversize():
    assert MAX_IMAGE_BYTES == 20 * 1024 * 1024
    with pytest.raises(InvalidParam) as exc_info:
        image_from_bytes(PNG, param="image", max_bytes=len(PNG) - 1)
    assert "larger than" in refusal(exc_info, "invalid_image").message
    assert image_from_bytes(PNG, param="image", max_bytes=len(PNG)).data == PNG


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "value",
    [
        "data:image/png;base64," + b64(PNG),
        "DATA:image/png;BASE64," + b64(PNG),
        # The declared type is not trusted either way.
        "data:image/jpeg;base64," + b64(PNG),
        "data:application/octet-stream;name=x.png;base64," + b64(PNG),
        b64(PNG),
        "  " + b64(PNG) + "\n",
        "\n".join(b64(PNG)[i : i + 76] for i in range(0, len(b64(PNG)), 76)),
        base64.urlsafe_b64encode(PNG).decode(),
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
        b64(PNG).rstrip("="),
    ],
)
def test_decode_inline_image_accepts(value):
    image = decode_inline_image(value, param="input_reference")
    assert image == InputImage(data=PNG, content_type="image/png")


def test_urlsafe_case_really_uses_the_urlsafe_alphabet():
    encoded = base64.urlsafe_b64encode(PNG).decode()
    assert "-" in encoded and "_" in encoded and len(PNG) % 3
    assert decode_inline_image(b64(JPEG), param="image").content_type == "image/jpeg"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not base64 at all!!",
        "@@@@",
        "abcde",
        b64(b"hello, this is a text file\n"),
        "data:text/plain;base64," + b64(b"hello"),
        "data:image/png," + "%89PNG",
        "data:image/png;base64",
        "data:image/png;base64,",
    ],
)
def test_decode_inline_image_refuses(value):
    with pytest.raises(InvalidParam) as exc_info:
        decode_inline_image(value, param="image")
    refusal(exc_info, "invalid_image")


def test_decode_inline_image_refuses_oversize():
    big = PNG * 100
    with pytest.raises(InvalidParam) as exc_info:
        decode_inline_image(b64(big), param="image", max_bytes=len(big) - 1)
    assert "larger than" in refusal(exc_info, "invalid_image").message
    assert decode_inline_image(b64(big), param="image", max_bytes=len(big)).data == big


# --- address and URL checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::7f00:1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001::1",
        "2001:db8::1",
        "not an address",
        "",
    ],
)
def test_refused_addresses(ip):
    assert not is_public_address(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V4,
        PUBLIC_V6,
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses(ip):
    assert is_public_address(ip)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/a.png",
        "https://10.0.0.1/a.png",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
        "http://224.0.0.1/",
    ],
)
async def test_check_url_refuses_literal_local_addresses(url):
    with pytest.raises(InvalidParam) as exc_info:
        await check_url(url, param="image", resolver=no_resolver)
    assert "private or local" in refusal(exc_info, "url_not_allowed").message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0x7F.0.0.1/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://127.0.0.1./",
        "http://0/",
        "http://134744072/",  # 8.8.8.8, but still not the canonical spelling
    ],
)
async def test_check_url_refuses_other_ipv4_spellings(url):
    with pytest.raises(InvalidParam) as exc_info:
        await check_url(url, param="image", resolver=no_resolver)
    refusal(exc_info, "url_not_allowed")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//example.com/a.png",
        "example.com/a.png",
        "",
        "http://",
        "http://user@example.com/a.png",
        "http://user:secret@example.com/a.png",
        "http://example.com\\@evil.example.net/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://foo.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://redis:6379/",
        "http://printer.local/",
        "http://router.home.arpa/",
    ],
)
async def test_check_url_refuses_before_resolving(url):
    with pytest.raises(InvalidParam) as exc_info:
        await check_url(url, param="image", resolver=no_resolver)
    refusal(exc_info, "url_not_allowed")


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        [PUBLIC_V4, "10.0.0.7"],
        ["10.0.0.7", PUBLIC_V4],
        [PUBLIC_V6, "::1"],
        [PUBLIC_V4, "::ffff:192.168.0.1"],
        ["fd00:ec2::254"],
        ["garbage"],
    ],
)
async def test_check_url_refuses_names_that_resolve_inward(answers):
    resolver = FakeResolver({"cdn.example.com": answers})
    with pytest.raises(InvalidParam) as exc_info:
        await check_url("https://cdn.example.com/cat.png", param="image", resolver=resolver)
    err = refusal(exc_info, "url_not_allowed")
    assert err.message == "image resolves to a private or local address"
    assert resolver.calls == [("cdn.example.com", 443)]


@pytest.mark.parametrize("answers", [None, []])
async def test_check_url_unresolvable(answers):
    resolver = FakeResolver({} if answers is None else {"nowhere.example.com": answers})
    with pytest.raises(InvalidParam) as exc_info:
        await check_url("http://nowhere.example.com/a.png", param="image", resolver=resolver)
    refusal(exc_info, "url_unresolvable")


@pytest.mark.parametrize(
    ("url", "expected_call"),
    [
        ("https://cdn.example.com/cat.png", ("cdn.example.com", 443)),
        ("http://cdn.example.com/cat.png", ("cdn.example.com", 80)),
        ("https://CDN.Example.com:8443/cat.png?x=1", ("cdn.example.com", 8443)),
        ("https://cdn.example.com./cat.png", ("cdn.example.com.", 443)),
        ("https://img_1.cdn.example.com/cat.png", ("img_1.cdn.example.com", 443)),
    ],
)
async def test_check_url_returns_public_answers(url, expected_call):
    host = expected_call[0]
    resolver = FakeResolver({host: [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]})
    assert await check_url(url, param="image", resolver=resolver) == [PUBLIC_V4, PUBLIC_V6]
    assert resolver.calls == [expected_call]


async def test_check_url_resolves_international_names_as_punycode():
    resolver = FakeResolver({"xn--r8jz45g.jp": [PUBLIC_V4]})
    assert await check_url("https://例え.jp/a.png", param="image", resolver=resolver) == [PUBLIC_V4]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://8.8.8.8/a.png", ["8.8.8.8"]), (f"https://[{PUBLIC_V6}]:8443/a.png", [PUBLIC_V6])],
)
async def test_check_url_accepts_public_literals_without_resolving(url, expected):
    assert await check_url(url, param="image", resolver=no_resolver) == expected


async def test_allow_exempts_resolved_answers_but_never_literals():
    resolver = FakeResolver({"images.example.test": ["127.0.0.1"]})
    allowed = await check_url(
        "http://images.example.test/a.png", param="image", resolver=resolver, allow={"127.0.0.1"}
    )
    assert allowed == ["127.0.0.1"]
    with pytest.raises(InvalidParam) as exc_info:
        await check_url("http://127.0.0.1/a.png", param="image", resolver=resolver, allow={"127.0.0.1"})
    refusal(exc_info, "url_not_allowed")


async def test_system_resolver_deduplicates():
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]
    answers = await system_resolver("localhost", 80)
    assert answers and len(answers) == len(set(answers))
    assert not any(is_public_address(a) for a in answers)


# --- fetching from a local server ----------------------------------------------------------------

BIG_CHUNK = 256 * 1024
BIG_TOTAL = 32 * 1024 * 1024


class ServerState:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sni: list[str | None] = []
        self.release = threading.Event()
        self.big_done = threading.Event()
        self.big_sent = 0
        self.big_finished = False

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class Handler(BaseHTTPRequestHandler):
    server: ImageServer

    def log_message(self, format, *args):
        pass

    def reply(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        fields = {name.replace("_", "-"): value for name, value in headers.items()}
        fields.setdefault("Content-Length", str(len(body)))
        for name, value in fields.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        state = self.server.state
        state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        url = urlsplit(self.path)
        path = url.path
        if path == "/png":
            self.reply(200, PNG, Content_Type="application/octet-stream")
        elif path == "/mp4":
            self.reply(200, MP4, Content_Type="video/mp4")
        elif path == "/gif-as-text":
            self.reply(200, GIF, Content_Type="text/plain")
        elif path == "/text":
            self.reply(200, b"hello, not an image\n", Content_Type="image/png")
        elif path == "/empty":
            self.reply(200, b"", Content_Type="image/png")
        elif path == "/gzip":
            self.reply(200, gzip.compress(PNG), Content_Type="image/png", Content_Encoding="gzip")
        elif path.startswith("/redirect/"):
            left = int(path.rsplit("/", 1)[1])
            self.reply(302, b"", Location=f"/redirect/{left - 1}" if left else "/png")
        elif path == "/to":
            self.reply(302, b"", Location=parse_qs(url.query)["target"][0])
        elif path == "/declared-big":
            self.reply(200, PNG, Content_Type="image/png", Content_Length=str(10**9))
        elif path == "/big":
            self.stream_big()
        elif path == "/stall":
            self.server.state.release.wait(5)
        else:
            self.reply(404, b"no such image")

    def stream_big(self) -> None:
        state = self.server.state
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            chunk = PNG + bytes(BIG_CHUNK - len(PNG))
            while state.big_sent < BIG_TOTAL:
                self.wfile.write(chunk)
                state.big_sent += len(chunk)
            state.big_finished = True
        except OSError:
            pass
        finally:
            state.big_done.set()


class ImageServer(ThreadingHTTPServer):
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = ServerState()
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.state.sni.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]


def run_server(server: ImageServer) -> Iterator[ImageServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[ImageServer]:
    yield from run_server(ImageServer())


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(
        {
            "images.example.test": ["127.0.0.1"],
            "cdn.example.test": ["127.0.0.1"],
            "internal.example.test": ["10.0.0.5"],
        }
    )


async def fetch(server: ImageServer, path: str, resolver: FakeResolver, **kw) -> InputImage:
    kw.setdefault("timeout_s", 3.0)
    return await fetch_image(
        f"http://images.example.test:{server.port}{path}",
        param="image",
        resolver=resolver,
        allow={"127.0.0.1"},
        **kw,
    )


async def test_fetch_image_pins_the_checked_address_and_sends_the_original_host(server, resolver):
    image = await fetch(server, "/png?size=1", resolver)
    assert image == InputImage(data=PNG, content_type="image/png")
    [(path, headers)] = server.state.requests
    assert path == "/png?size=1"
    assert headers["host"] == f"images.example.test:{server.port}"
    assert headers["accept-encoding"] == "identity"
    assert resolver.calls == [("images.example.test", server.port)]


async def test_content_type_comes_from_the_bytes(server, resolver):
    image = await fetch(server, "/gif-as-text", resolver)
    assert (image.content_type, image.extension) == ("image/gif", "gif")


async def test_tries_the_next_checked_address_when_one_refuses_connections(server):
    # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1 only).
    resolver = FakeResolver({"images.example.test": ["127.0.0.2", "127.0.0.1"]})
    image = await fetch_image(
        f"http://images.example.test:{server.port}/png",
        param="image",
        resolver=resolver,
        allow={"127.0.0.1", "127.0.0.2"},
        timeout_s=3,
    )
    assert image.data == PNG


async def test_oversize_body_is_cut_off(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/big", resolver, max_bytes=1024 * 1024)
    assert refusal(exc_info, "fetch_too_large").message == "image: the image is larger than 1 MB"
    assert await asyncio.to_thread(server.state.big_done.wait, 5)
    assert not server.state.big_finished
    assert server.state.big_sent < BIG_TOTAL


async def test_declared_oversize_body_is_refused_before_reading(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/declared-big", resolver, max_bytes=len(PNG))
    refusal(exc_info, "fetch_too_large")


async def test_a_body_exactly_at_the_limit_is_accepted(server, resolver):
    assert (await fetch(server, "/png", resolver, max_bytes=len(PNG))).data == PNG


async def test_redirects_are_followed_up_to_three_hops(server, resolver):
    assert (await fetch(server, "/redirect/2", resolver)).data == PNG
    assert server.state.paths() == ["/redirect/2", "/redirect/1", "/redirect/0", "/png"]
    assert len(resolver.calls) == 4


async def test_a_fourth_redirect_is_refused(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/redirect/3", resolver)
    assert "redirects" in refusal(exc_info, "fetch_failed").message
    assert server.state.paths() == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]


async def test_redirect_to_another_name_is_resolved_and_checked_again(server, resolver):
    target = f"http://cdn.example.test:{server.port}/png"
    assert (await fetch(server, f"/to?target={target}", resolver)).data == PNG
    assert server.state.requests[-1][1]["host"] == f"cdn.example.test:{server.port}"
    assert [host for host, _ in resolver.calls] == ["images.example.test", "cdn.example.test"]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/png",
        "http://[::1]:{port}/png",
        "http://localhost:{port}/png",
        "http://internal.example.test:{port}/png",
        "http://2130706433:{port}/png",
        "file:///etc/passwd",
    ],
)
async def test_redirect_inward_is_refused(server, resolver, target):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/to?target=" + target.format(port=server.port), resolver)
    refusal(exc_info, "url_not_allowed")
    assert server.state.paths() == ["/to?target=" + target.format(port=server.port)]


@pytest.mark.parametrize("path", ["/text", "/empty"])
async def test_non_image_body_is_refused(server, resolver, path):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, path, resolver)
    refusal(exc_info, "invalid_image")


async def test_compressed_body_is_refused(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/gzip", resolver)
    refusal(exc_info, "fetch_failed")


async def test_not_found_is_fetch_failed(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/missing.png", resolver)
    assert "404" in refusal(exc_info, "fetch_failed").message


async def test_stalled_server_fails_at_the_deadline(server, resolver):
    started = time.monotonic()
    with pytest.raises(InvalidParam) as exc_info:
        await fetch(server, "/stall", resolver, timeout_s=0.3)
    refusal(exc_info, "fetch_failed")
    assert time.monotonic() - started < 1.5


async def test_connection_refused_is_fetch_failed(resolver):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_image(
            f"http://images.example.test:{port}/png",
            param="image",
            resolver=resolver,
            allow={"127.0.0.1"},
            timeout_s=3,
        )
    refusal(exc_info, "fetch_failed")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:{port}/png", "url_not_allowed"),
        ("http://internal.example.test:{port}/png", "url_not_allowed"),
        ("http://unknown.example.test:{port}/png", "url_unresolvable"),
        ("ftp://images.example.test:{port}/png", "url_not_allowed"),
    ],
)
async def test_refused_urls_send_no_request(server, resolver, url, code):
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=PNG)

    with pytest.raises(InvalidParam) as exc_info:
        await fetch_image(
            url.format(port=server.port),
            param="image",
            resolver=resolver,
            allow={"127.0.0.1"},
            transport=httpx.MockTransport(handler),
        )
    refusal(exc_info, code)
    assert sent == []
    assert server.state.requests == []


async def test_dns_is_not_consulted_again_between_check_and_connect():
    answers = iter([[PUBLIC_V4], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(PNG))

    image = await fetch_image(
        "https://cdn.example.com/cat.png",
        param="image",
        resolver=rebinding,
        transport=httpx.MockTransport(handler),
    )
    assert image.data == PNG
    assert calls == ["cdn.example.com"]
    [request] = sent
    assert str(request.url) == f"https://{PUBLIC_V4}/cat.png"
    assert request.headers["host"] == "cdn.example.com"
    assert request.extensions["sni_hostname"] == "cdn.example.com"


# --- https: the pinned connection must still present and verify the original name ----------------


def make_certificates() -> tuple[bytes, bytes, bytes]:
    """A CA and a leaf for images.example.test, as PEM: (ca cert, leaf cert, leaf key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.example.test")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[ImageServer, ssl.SSLContext]]:
    ca_pem, leaf_pem, key_pem = make_certificates()
    (tmp_path / "leaf.pem").write_bytes(leaf_pem + key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem")
    client_ctx = ssl.create_default_context(cadata=ca_pem.decode())
    for server in run_server(ImageServer(tls=server_ctx)):
        yield server, client_ctx


async def test_https_fetch_sends_sni_and_verifies_the_original_name(tls_server, resolver):
    server, client_ctx = tls_server
    image = await fetch_image(
        f"https://images.example.test:{server.port}/png",
        param="image",
        resolver=resolver,
        allow={"127.0.0.1"},
        transport=httpx.AsyncHTTPTransport(verify=client_ctx),
        timeout_s=3,
    )
    assert image.data == PNG
    assert server.state.sni == ["images.example.test"]
    assert server.state.requests[0][1]["host"] == f"images.example.test:{server.port}"


async def test_https_certificate_for_another_name_is_fetch_failed(tls_server):
    server, client_ctx = tls_server
    resolver = FakeResolver({"other.example.test": ["127.0.0.1"]})
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_image(
            f"https://other.example.test:{server.port}/png",
            param="image",
            resolver=resolver,
            allow={"127.0.0.1"},
            transport=httpx.AsyncHTTPTransport(verify=client_ctx),
            timeout_s=3,
        )
    refusal(exc_info, "fetch_failed")
    assert server.state.requests == []


# --- character videos: the same address checks, pinning and caps as images ----------------------------


async def fetch_mp4(server: ImageServer, path: str, resolver: FakeResolver, **kw):
    kw.setdefault("timeout_s", 3.0)
    return await fetch_video(
        f"http://images.example.test:{server.port}{path}",
        param="url",
        resolver=resolver,
        allow={"127.0.0.1"},
        **kw,
    )


async def test_fetch_video_takes_an_mp4_from_a_checked_address(server, resolver):
    video = await fetch_mp4(server, "/mp4", resolver)
    assert video.data == MP4 and video.content_type == "video/mp4"
    path, headers = server.state.requests[-1]
    assert path == "/mp4" and headers["host"] == f"images.example.test:{server.port}"
    assert headers["accept"] == "video/mp4" and headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://127.0.0.1:{port}/mp4",
        "http://[::ffff:127.0.0.1]:{port}/mp4",
        "http://0.0.0.0:{port}/mp4",
        "http://10.0.0.5/mp4",
        "http://100.64.0.1/mp4",
        "http://localhost:{port}/mp4",
        "http://internal.example.test:{port}/mp4",
        "http://user:pass@images.example.test:{port}/mp4",
        "file:///etc/passwd",
    ],
)
async def test_fetch_video_refuses_inward_urls_without_sending_anything(server, resolver, url):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_video(url.format(port=server.port), param="url", resolver=resolver, allow={"127.0.0.1"})
    refusal(exc_info, "url_not_allowed", param="url")
    assert server.state.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:{port}/mp4",
        "http://[::1]:{port}/mp4",
        "http://internal.example.test:{port}/mp4",
    ],
)
async def test_fetch_video_refuses_a_redirect_inward(server, resolver, target):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_mp4(server, "/to?target=" + target.format(port=server.port), resolver)
    refusal(exc_info, "url_not_allowed", param="url")
    assert len(server.state.requests) == 1


async def test_fetch_video_follows_public_redirects_and_rechecks_each_name(server, resolver):
    target = f"http://cdn.example.test:{server.port}/mp4"
    assert (await fetch_mp4(server, f"/to?target={target}", resolver)).data == MP4
    assert [host for host, _ in resolver.calls] == ["images.example.test", "cdn.example.test"]


async def test_fetch_video_is_capped_in_size(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_mp4(server, "/big", resolver, max_bytes=1024 * 1024)
    assert refusal(exc_info, "fetch_too_large", param="url").message == "url: the video is larger than 1 MB"
    assert await asyncio.to_thread(server.state.big_done.wait, 5)
    assert not server.state.big_finished
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_mp4(server, "/declared-big", resolver, max_bytes=len(MP4))
    refusal(exc_info, "fetch_too_large", param="url")


async def test_fetch_video_gives_up_at_its_deadline(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_mp4(server, "/stall", resolver, timeout_s=0.3)
    assert "did not download within 0.3 s" in refusal(exc_info, "fetch_failed", param="url").message


async def test_fetch_video_takes_only_mp4(server, resolver):
    with pytest.raises(InvalidParam) as exc_info:
        await fetch_mp4(server, "/png", resolver)
    refusal(exc_info, "invalid_video", param="url")
