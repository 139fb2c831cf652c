"""Hostile input: every malformed request is a 4xx in the contract's error shape, stores nothing, and leaves
the process healthy (the real app, Postgres and Redis; no worker, so accepted jobs stay queued)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.models import Account, ApiKey, Job
from shared.settings import Settings
from tests import strict
from tests.integration.conftest import ADMIN, CLIENT, set_pool_plan

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
MP4 = (Path(__file__).resolve().parents[2] / "sim" / "assets" / "src.mp4").read_bytes()
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
REMIX = "/v1/videos/s_" + "a" * 32 + "/remix"
# Every client route that creates something, with a body that would otherwise be accepted.
CREATES: dict[str, dict[str, Any]] = {
    "/v1/videos": {"prompt": "a fox"},
    "/v1/videos/generations": {"prompt": "a fox"},
    REMIX: {"prompt": "a fox"},
    "/v1/images/generations": {"prompt": "a fox"},
    "/v1/images/edits": {"prompt": "a fox", "image": base64.b64encode(PNG).decode()},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "a fox"}]},
    "/v1/characters": {"video": base64.b64encode(MP4).decode()},
}
ANY = object()


def deep(depth: int) -> bytes:
    return b'{"prompt": "x", "metadata": ' + b"[" * depth + b"]" * depth + b"}"


def multipart(body: bytes, boundary: str | None = "x") -> dict[str, Any]:
    content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    return {"content": body, "headers": {**CLIENT, "content-type": content_type}}


def part(name: str, value: bytes, *, headers: bytes = b"") -> bytes:
    return (
        b'--x\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n'
        + headers
        + b"\r\n"
        + value
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    # Held requests (images, chat) give up at once: nothing here waits for a worker.
    quick = msgspec.structs.replace(settings, sync_wait_s=0.2, character_video_max_bytes=len(MP4) + 10)
    async with AsyncTestClient(app=create_app(quick)) as test_client:
        yield test_client


class Rows:
    """What a refused request must not have left behind: rows, and inputs staged in storage."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings, pool_size=1)
        self.inputs = Path(settings.media_dir) / "inputs"

    def staged(self) -> int:
        return sum(1 for item in self.inputs.rglob("*") if item.is_file()) if self.inputs.exists() else 0

    async def count(self) -> tuple[int, ...]:
        async with create_sessionmaker(self.engine)() as session:
            counts = []
            for table in (Job, Account, ApiKey):
                counts.append(
                    int((await session.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
                )
        return (*counts, self.staged())


@pytest.fixture
async def rows(settings: Settings) -> AsyncIterator[Rows]:
    found = Rows(settings)
    try:
        yield found
    finally:
        await found.engine.dispose()


async def refused(
    client: AsyncTestClient,
    rows: Rows,
    cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]],
    *,
    code: str | None = None,
) -> None:
    """Sends each request; each must be refused with its status (and ``code``, when given), in the error
    shape, storing nothing."""
    failures = []
    for method, path, kwargs, status, param in cases:
        before = await rows.count()
        response = await client.request(method, path, **kwargs)
        label = f"{method} {path[:70]} {str(kwargs)[:120]!r}"
        statuses = status if isinstance(status, tuple) else (status,)
        if response.status_code not in statuses:
            failures.append(f"{label}: {response.status_code} {response.text[:200]}")
            continue
        try:
            error = strict.error(response.content)
        except msgspec.ValidationError as exc:
            failures.append(f"{label}: not the error shape ({exc}): {response.text[:200]}")
            continue
        if param is not ANY and error.param != param:
            failures.append(f"{label}: param {error.param!r}, expected {param!r}")
        if code is not None and error.code != code:
            failures.append(f"{label}: code {error.code!r}, expected {code!r}")
        if await rows.count() != before:
            failures.append(f"{label}: a refused request stored something")
    assert not failures, "\n".join(failures)
    assert (await client.get("/readyz")).status_code == 200


async def test_unreadable_bodies_on_every_create_route(client: AsyncTestClient, rows: Rows) -> None:
    cases = []
    for path in CREATES:
        for body in (
            b"{not json",
            b"[1, 2]",
            b'"a string"',
            b"null",
            b"42",
            b"",
            b"   ",
            b"1e999",
            deep(5000),
        ):
            cases.append(("POST", path, {"content": body, "headers": {**CLIENT, **JSON}}, 400, None))
        cases += [
            (
                "POST",
                path,
                {"content": b"<a/>", "headers": {**CLIENT, "content-type": "application/xml"}},
                400,
                None,
            ),
            # Multipart without a boundary, with another boundary, cut off, or with text that is not UTF-8.
            ("POST", path, multipart(part("prompt", b"hi\r\n--x--\r\n"), boundary=None), 400, None),
            ("POST", path, multipart(part("prompt", b"hi\r\n--x--\r\n"), boundary="y"), 400, ANY),
            ("POST", path, multipart(part("prompt", b"hi")), 400, ANY),
            ("POST", path, multipart(b'--x\r\nContent-Disposition: form-data; name="prompt"\r\n'), 400, ANY),
            ("POST", path, multipart(bytes(range(256)) * 8), 400, ANY),
            ("POST", path, multipart(part("prompt", b"\xff\xfe\xc3\x28\r\n--x--\r\n")), 400, None),
            (
                "POST",
                path,
                multipart(
                    part("prompt", b"hi\r\n--x--\r\n", headers=b"Content-Type: text/plain; charset=nope\r\n")
                ),
                400,
                None,
            ),
        ]
    await refused(client, rows, cases)


async def test_nul_characters_are_refused_wherever_they_are(client: AsyncTestClient, rows: Rows) -> None:
    """Postgres cannot store a NUL in text or JSONB: a 400 naming the field, before anything is stored."""
    cases = []
    for path, body in CREATES.items():
        cases += [
            ("POST", path, {"json": {**body, "model": "sora-2\x00"}, "headers": CLIENT}, 400, "model"),
            (
                "POST",
                path,
                {"json": {**body, "metadata": {"k": ["ok", "v\x00"]}}, "headers": CLIENT},
                400,
                "metadata",
            ),
            ("POST", path, {"json": {**body, "metadata": {"k\x00": 1}}, "headers": CLIENT}, 400, "metadata"),
            ("POST", path, {"files": {"prompt": (None, "a\x00b")}, "headers": CLIENT}, 400, "prompt"),
        ]
    for path in ("/v1/videos", "/v1/videos/generations", REMIX, "/v1/images/generations"):
        cases.append(("POST", path, {"json": {"prompt": "a\x00b"}, "headers": CLIENT}, 400, "prompt"))
        # An escaped NUL inside a multipart JSON field.
        fields = {"prompt": (None, "ab"), "metadata": (None, '{"a": "\\u0000"}')}
        if path.startswith("/v1/videos") or path == REMIX:
            cases.append(("POST", path, {"files": fields, "headers": CLIENT}, 400, "metadata"))
    chat = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a\x00"}]}]}
    cases += [
        ("POST", "/v1/chat/completions", {"json": chat, "headers": CLIENT}, 400, "messages"),
        (
            "POST",
            "/v1/videos",
            {"json": {"prompt": "a", "character_from_task": "video_\x00"}, "headers": CLIENT},
            400,
            "character_from_task",
        ),
        ("POST", "/v1/characters", {"json": {"from_task": "char_\x00"}, "headers": CLIENT}, 400, "from_task"),
        (
            "POST",
            "/v1/videos",
            {
                "json": {
                    "prompt": "a",
                    "character_create": True,
                    "character_options": {"display_name": "x\x00"},
                },
                "headers": CLIENT,
            },
            400,
            "character_options",
        ),
        # Admin text and tokens.
        ("POST", "/api/keys", {"json": {"label": "team\x00"}, "headers": ADMIN}, 400, "label"),
        ("POST", "/api/tokens", {"json": {"token": "tok\x00en"}, "headers": ADMIN}, 400, "token"),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "ok-token-1", "remark": "x\x00"}, "headers": ADMIN},
            400,
            "remark",
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "ok-token-1", "proxy_url": "http://\x00/"}, "headers": ADMIN},
            400,
            "proxy_url",
        ),
        (
            "POST",
            "/api/tokens/import",
            {"json": {"tokens": "t", "client_id": "a\x00"}, "headers": ADMIN},
            400,
            "client_id",
        ),
        ("PATCH", "/api/tokens/1", {"json": {"remark": "\x00"}, "headers": ADMIN}, 400, "remark"),
        ("PATCH", "/api/tokens/1", {"json": {"st": "a\x00b"}, "headers": ADMIN}, 400, "st"),
    ]
    await refused(client, rows, cases)


async def test_nul_characters_in_ids_and_queries_are_not_found_or_refused(
    client: AsyncTestClient, rows: Rows
) -> None:
    cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]] = [
        ("GET", path, {"headers": CLIENT}, 404, ANY)
        for path in (
            "/v1/videos/video_%00",
            "/v1/videos/tasks/video_%00",
            "/v1/videos/video_%00/content",
            "/v1/videos/video_%00/events",
            "/v1/images/img_%00/content",
            "/v1/videos?after=video_%00",
            "/v1/videos/" + "a" * 10_000,
        )
    ]
    cases += [
        ("DELETE", "/v1/videos/video_%00", {"headers": CLIENT}, 404, ANY),
        ("POST", "/v1/videos/video_%00/remix", {"json": {"prompt": "a"}, "headers": CLIENT}, 404, ANY),
        ("GET", "/v1/feed?cursor=%00", {"headers": CLIENT}, 400, "cursor"),
        ("GET", "/v1/profiles/%00", {"headers": CLIENT}, 400, "username"),
        ("GET", "/v1/users/%1b%5b31m/feed", {"headers": CLIENT}, 400, "user_id"),
        ("GET", "/v1/characters/search?username=%00", {"headers": CLIENT}, 400, "username"),
    ]
    await refused(client, rows, cases)


async def test_wrong_types_and_absurd_values(client: AsyncTestClient, rows: Rows) -> None:
    def post(path: str, body: dict[str, Any], status: int, param: Any, headers: dict = CLIENT) -> tuple:
        return ("POST", path, {"json": body, "headers": headers}, status, param)

    cases = []
    for path in ("/v1/videos", "/v1/videos/generations", REMIX):
        cases += [
            post(path, {"prompt": ["a fox"]}, 400, "prompt"),
            post(path, {"prompt": {"text": "a fox"}}, 400, "prompt"),
            post(path, {}, 400, "prompt"),
            post(path, {"prompt": "a", "model": ["sora-2"]}, 400, "model"),
            post(path, {"prompt": "a", "model": 2}, 400, "model"),
            post(path, {"prompt": "a", "model": "gpt-5"}, 400, "model"),
            post(path, {"prompt": "a", "model": "sora-2-" + "x" * 100_000}, 400, "model"),
            post(path, {"prompt": "a", "seconds": [10]}, 400, "seconds"),
            post(path, {"prompt": "a", "seconds": 10**40}, 400, "seconds"),
            post(path, {"prompt": "a", "seconds": -10}, 400, "seconds"),
            post(path, {"prompt": "a", "duration": "1e999"}, 400, "seconds"),
            post(path, {"prompt": "a", "size": 720}, 400, "size"),
            post(path, {"prompt": "a", "size": "99999999999999999999x9"}, 400, "size"),
            post(path, {"prompt": "a", "size": "0x0"}, 400, "size"),
            post(path, {"prompt": "a", "orientation": "diagonal"}, 400, ANY),
            post(path, {"prompt": "a", "aspect_ratio": ["16:9"]}, 400, "aspect_ratio"),
            post(path, {"prompt": "a", "style_id": ["anime"]}, 400, "style_id"),
            post(path, {"prompt": "a", "metadata": [1]}, 400, "metadata"),
            post(path, {"prompt": "a", "metadata": {"k": "v" * 17_000}}, 400, "metadata"),
            post(path, {"prompt": "a", "watermark": "maybe"}, 400, "watermark"),
            post(path, {"prompt": "a", "async_mode": {"no": 1}}, 400, "async_mode"),
            post(path, {"prompt": "a", "input_reference": 5}, 400, "input_reference"),
            post(path, {"prompt": "a", "input_reference": "A" * (28 * 1024 * 1024)}, 400, "input_reference"),
            post(
                path,
                {"prompt": "a", "character_options": [1], "character_create": True},
                400,
                "character_options",
            ),
            post(path, {"prompt": "a", "character_url": 5}, 400, "character_url"),
            post(path, {"prompt": "a", "character_create": "maybe"}, 400, "character_create"),
            post(path, {"prompt": "a", "character_from_task": {"id": 1}}, 400, "character_from_task"),
        ]
    cases.append(post("/v1/videos/generations", {"prompt": "a", "characters": "x"}, 400, "characters"))
    for path in ("/v1/images/generations", "/v1/images/edits"):
        for n in (0, 5, -1, 10**40, 2.5, "lots", [2]):
            cases.append(post(path, {**CREATES[path], "n": n}, 400, "n"))
        cases += [
            post(path, {**CREATES[path], "size": "axb"}, 400, "size"),
            post(path, {**CREATES[path], "response_format": 5}, 400, "response_format"),
            post(path, {**CREATES[path], "model": "sora-2"}, 400, "model"),
            post(path, {**CREATES[path], "prompt": 5}, 400, "prompt"),
        ]
    cases.append(post("/v1/images/edits", {"prompt": "a fox"}, 400, "image"))
    chat = "/v1/chat/completions"
    user = [{"role": "user", "content": "a fox"}]
    cases += [
        post(chat, {"messages": "a fox"}, 400, "messages"),
        post(chat, {"messages": [1, None, "x"]}, 400, "messages"),
        post(chat, {"messages": [{"role": "user", "content": {"a": 1}}]}, 400, "messages"),
        post(chat, {"messages": [{"role": "user", "content": [1, {"type": "text"}]}]}, 400, "messages"),
        post(chat, {"messages": user, "model": {"id": "sora-2"}, "max_tokens": 1}, 400, "model"),
        post(chat, {"messages": user, "response_format": "json"}, 400, "response_format"),
        post(chat, {"messages": user, "stream": True, "stream_options": "usage"}, 400, "stream_options"),
        post(chat, {"messages": user, "character_options": "x"}, 400, "character_options"),
        post(chat, {"messages": user, "model": "gpt-5"}, 400, "model"),
    ]
    characters = "/v1/characters"
    cases += [
        post(characters, {}, 400, "video"),
        post(characters, {"video": 5}, 400, "video"),
        post(characters, {"from_task": ["x"]}, 400, "from_task"),
        post(characters, {**CREATES[characters], "timestamps": {"a": 1}}, 400, "timestamps"),
        post(characters, {**CREATES[characters], "timestamps": "nan,inf"}, 400, "timestamps"),
        post(characters, {**CREATES[characters], "username": {"a": 1}}, 400, "username"),
        post(characters, {**CREATES[characters], "instruction_set": "x" * 100_000}, 400, "instruction_set"),
        post(characters, {"video": base64.b64encode(MP4 + bytes(100)).decode()}, 400, "video"),
    ]
    await refused(client, rows, cases)


async def test_the_query_and_list_routes_refuse_bad_parameters(client: AsyncTestClient, rows: Rows) -> None:
    cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]] = [
        ("GET", path, {"headers": CLIENT}, 400, param)
        for path, param in (
            ("/v1/videos?limit=abc", ANY),
            ("/v1/videos?limit=99999999999999999999999", ANY),
            ("/v1/videos?limit=0", ANY),
            ("/v1/videos?order=sideways", ANY),
            ("/v1/characters?limit=1e5", ANY),
            ("/v1/feed?limit=99999999999999999999", "limit"),
            ("/v1/feed?limit=-1", "limit"),
            ("/v1/feed?cut=%F0%9F%A6%8A", "cut"),
            ("/v1/feed?token_id=99999999999999999999", "token_id"),
            ("/v1/feed?token_id=3000000000", "token_id"),
            ("/v1/feed?token_id=abc", "token_id"),
            ("/v1/invite-codes?token_id=-1", "token_id"),
            ("/v1/tokens/3000000000/profile-feed", "token_id"),
            ("/v1/tokens/abc/profile-feed", "token_id"),
            ("/v1/characters/search", "username"),
            ("/v1/characters/search?username=x&intent=everything", "intent"),
            ("/v1/characters/search?username=" + "x" * 600, "username"),
            ("/v1/videos/video_" + "0" * 32 + "/content?exp=abc", ANY),
        )
    ]
    await refused(client, rows, cases)


async def test_admin_routes_refuse_bad_input(client: AsyncTestClient, rows: Rows) -> None:
    cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]] = []
    # Ids past a Postgres integer are unknown ids, not database errors.
    for account in ("3000000000", "99999999999999999999"):
        base = f"/api/tokens/{account}"
        cases += [
            ("GET", base, {"headers": ADMIN}, 404, ANY),
            ("DELETE", base, {"headers": ADMIN}, 404, ANY),
            ("PATCH", base, {"json": {"remark": "x"}, "headers": ADMIN}, 404, ANY),
            *[
                ("POST", f"{base}/{action}", {"headers": ADMIN}, 404, ANY)
                for action in ("test", "refresh", "enable", "disable")
            ],
            ("DELETE", f"/api/keys/{account}", {"headers": ADMIN}, 404, ANY),
        ]
    for path in ("/api/keys", "/api/tokens", "/api/tokens/import"):
        for body in (b"{", b"[1]", b'"x"', b"", deep(5000)):
            cases.append(("POST", path, {"content": body, "headers": {**ADMIN, **JSON}}, 400, ANY))
    cases += [
        ("POST", "/api/keys", {"json": {"rate_limit": 10**40}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/keys", {"json": {"rate_limit": 1.5}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/keys", {"json": {"label": ["x"]}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/tokens", {"json": {}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/tokens", {"json": {"token": 5}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/tokens", {"json": {"token": "   "}, "headers": ADMIN}, 400, "token"),
        ("POST", "/api/tokens", {"json": {"token": "two words"}, "headers": ADMIN}, 400, "token"),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "video_concurrency": 10**40}, "headers": ADMIN},
            400,
            ANY,
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "video_concurrency": 4}, "headers": ADMIN},
            400,
            "video_concurrency",
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "proxy_url": "http://[::1"}, "headers": ADMIN},
            400,
            "proxy_url",
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "proxy_url": "http://h:99999"}, "headers": ADMIN},
            400,
            "proxy_url",
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "proxy_url": "ftp://h/"}, "headers": ADMIN},
            400,
            "proxy_url",
        ),
        (
            "POST",
            "/api/tokens",
            {"json": {"token": "t-1", "remark": "x" * 3000}, "headers": ADMIN},
            400,
            "remark",
        ),
        ("POST", "/api/tokens/import", {"json": {"tokens": [1, 2]}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/tokens/import", {"json": {"tokens": "a", "kind": "jwt"}, "headers": ADMIN}, 400, ANY),
        ("POST", "/api/tokens/import", {"json": {"tokens": "\n \n"}, "headers": ADMIN}, 400, "tokens"),
        (
            "POST",
            "/api/tokens/import",
            {"json": {"tokens": "\n".join(f"t{i}" for i in range(501))}, "headers": ADMIN},
            400,
            "tokens",
        ),
        ("PATCH", "/api/tokens/1", {"json": [1], "headers": ADMIN}, 400, ANY),
        ("PATCH", "/api/tokens/1", {"content": b"{", "headers": {**ADMIN, **JSON}}, 400, ANY),
        (
            "PATCH",
            "/api/tokens/1",
            {"json": {"video_concurrency": 10**40}, "headers": ADMIN},
            400,
            "video_concurrency",
        ),
        ("PATCH", "/api/tokens/1", {"json": {"remark": "x" * 3000}, "headers": ADMIN}, 400, "remark"),
        (
            "PATCH",
            "/api/tokens/1",
            {"json": {"proxy_url": "http://[::1"}, "headers": ADMIN},
            400,
            "proxy_url",
        ),
        ("PATCH", "/api/tokens/1", {"json": {"token": "new\ttoken"}, "headers": ADMIN}, 400, "token"),
        ("PATCH", "/api/tokens/1", {"json": {"plan_type": "pro"}, "headers": ADMIN}, 400, "plan_type"),
        ("DELETE", "/api/tokens/1?force=perhaps", {"headers": ADMIN}, 400, ANY),
    ]
    await refused(client, rows, cases)


async def test_an_import_line_that_is_no_token_fails_alone(client: AsyncTestClient) -> None:
    response = await client.post("/api/tokens/import", json={"tokens": "a\x00b", "kind": "at"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    (line,) = response.json()["results"]
    assert line["result"] == "failed" and "\x00" not in line["error"]


async def test_prompts_past_the_limit_are_refused_and_the_limit_itself_is_taken(
    client: AsyncTestClient, rows: Rows, settings: Settings
) -> None:
    limit = settings.prompt_max_chars
    long = "x" * 100_000
    cases = [
        ("POST", path, {"json": {**CREATES[path], "prompt": long}, "headers": CLIENT}, 400, "prompt")
        for path in (
            "/v1/videos",
            "/v1/videos/generations",
            REMIX,
            "/v1/images/generations",
            "/v1/images/edits",
        )
    ]
    cases += [
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"messages": [{"role": "user", "content": long}]}, "headers": CLIENT},
            400,
            "prompt",
        ),
        (
            "POST",
            "/v1/videos",
            {"files": {"prompt": (None, "x" * (limit + 1))}, "headers": CLIENT},
            400,
            "prompt",
        ),
    ]
    await refused(client, rows, cases, code="prompt_too_long")

    at_limit = await client.post("/v1/videos", json={"prompt": "y" * limit}, headers=CLIENT)
    assert at_limit.status_code == 200, at_limit.text
    assert strict.video(at_limit.content).prompt == "y" * limit


async def test_the_prompt_limit_is_a_setting(settings: Settings) -> None:
    small = msgspec.structs.replace(settings, prompt_max_chars=10)
    async with AsyncTestClient(app=create_app(small)) as client:
        assert (await client.post("/v1/videos", json={"prompt": "x" * 10}, headers=CLIENT)).status_code == 200
        response = await client.post("/v1/videos", json={"prompt": "x" * 11}, headers=CLIENT)
        assert response.status_code == 400 and strict.error(response.content).code == "prompt_too_long"


async def test_bodies_over_the_limit_are_413(settings: Settings, rows: Rows) -> None:
    small = msgspec.structs.replace(settings, request_max_body_bytes=64 * 1024)
    big = "x" * (100 * 1024)
    async with AsyncTestClient(app=create_app(small)) as client:
        cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]] = []
        for path in CREATES:
            cases += [
                (
                    "POST",
                    path,
                    {"content": b'{"prompt": "' + big.encode() + b'"}', "headers": {**CLIENT, **JSON}},
                    413,
                    None,
                ),
                (
                    "POST",
                    path,
                    {
                        "files": {"prompt": (None, "a"), "image": ("a.png", PNG + big.encode(), "image/png")},
                        "headers": CLIENT,
                    },
                    413,
                    None,
                ),
            ]
        cases += [
            ("POST", "/api/keys", {"json": {"label": big}, "headers": ADMIN}, 413, None),
            ("POST", "/api/tokens/import", {"json": {"tokens": big}, "headers": ADMIN}, 413, None),
        ]
        await refused(client, rows, cases, code="payload_too_large")
        # A body under the limit is read as usual.
        assert (await client.post("/v1/videos", json={"prompt": "a fox"}, headers=CLIENT)).status_code == 200


async def test_uploads_over_their_caps_are_refused(client: AsyncTestClient, rows: Rows) -> None:
    too_big_image = PNG + bytes(21 * 1024 * 1024)
    cases: list[tuple[str, str, dict[str, Any], int | tuple[int, ...], Any]] = [
        (
            "POST",
            "/v1/videos",
            {
                "files": {"prompt": (None, "a"), "input_reference": ("a.png", too_big_image, "image/png")},
                "headers": CLIENT,
            },
            400,
            "input_reference",
        ),
        (
            "POST",
            "/v1/images/edits",
            {
                "files": {"prompt": (None, "a"), "image": ("a.png", too_big_image, "image/png")},
                "headers": CLIENT,
            },
            400,
            "image",
        ),
        # The client fixture caps character videos just above the sample MP4.
        (
            "POST",
            "/v1/characters",
            {"files": {"video": ("a.mp4", MP4 + bytes(1000), "video/mp4")}, "headers": CLIENT},
            400,
            "video",
        ),
        (
            "POST",
            "/v1/videos",
            {"files": {"prompt": ("p.txt", b"a fox", "text/plain")}, "headers": CLIENT},
            400,
            "prompt",
        ),
        (
            "POST",
            "/v1/videos",
            {"files": {f"f{i}": (None, "x") for i in range(1500)}, "headers": CLIENT},
            400,
            ANY,
        ),
    ]
    await refused(client, rows, cases)


async def test_idempotency_keys_are_bounded(client: AsyncTestClient, rows: Rows) -> None:
    cases = [
        (
            "POST",
            path,
            {"json": body, "headers": {**CLIENT, "Idempotency-Key": "k" * 256}},
            400,
            "Idempotency-Key",
        )
        for path, body in CREATES.items()
    ]
    await refused(client, rows, cases)
    ok = await client.post(
        "/v1/videos", json={"prompt": "a"}, headers={**CLIENT, "Idempotency-Key": "k" * 255}
    )
    assert ok.status_code == 200, ok.text


async def test_odd_but_valid_text_is_kept_exactly(client: AsyncTestClient) -> None:
    """Control characters other than NUL, bidi overrides, zero-width joiners, combining marks and characters
    outside the BMP are text like any other: accepted and answered back unchanged."""
    prompt = (
        "a\tfox\r\n\x01\x1b[31m \u202eright-to-left\u202c \u200d👩‍👩‍👧 e\u0301 ﷽ "
        "\U0001d523\U0001d52c\U0001d535 \ufeff"
    )
    response = await client.post(
        "/v1/videos", json={"prompt": prompt, "metadata": {"ключ": "値 🦊"}}, headers=CLIENT
    )
    assert response.status_code == 200, response.text
    video = strict.video(response.content)
    assert video.prompt == prompt.strip()
    fetched = await client.get(f"/v1/videos/{video.id}", headers=CLIENT)
    assert strict.video(fetched.content).prompt == prompt.strip()
    events = await client.get(f"/v1/videos/{video.id}/events", headers={**CLIENT, "Last-Event-ID": "one"})
    assert events.status_code == 400 and strict.error(events.content).param == "Last-Event-ID"


async def test_urls_to_our_own_network_are_refused_on_every_route_that_fetches(
    client: AsyncTestClient, rows: Rows
) -> None:
    """Every field the worker would fetch is checked now: loopback, private, link-local and metadata addresses
    are a 400 url_not_allowed before anything is stored (shared/inputs.py; redirects and caps: unit tests)."""
    inward = (
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/latest/",
        "http://127.0.0.1:5432/",
        "http://10.1.2.3/a.png",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0x7f000001/a.png",
    )
    cases = []
    for url in inward:

        def post(path: str, body: dict[str, Any], param: str) -> tuple:
            return ("POST", path, {"json": body, "headers": CLIENT}, 400, param)

        cases += [
            post("/v1/videos", {"prompt": "a", "input_reference": {"image_url": url}}, "input_reference"),
            post("/v1/videos/generations", {"prompt": "a", "image_urls": [url]}, "image_urls"),
            post("/v1/videos/generations", {"prompt": "a", "characters": [{"url": url}]}, "character_url"),
            post("/v1/videos", {"prompt": "a", "character_url": url}, "character_url"),
            post("/v1/images/generations", {"prompt": "a", "input_image": url}, "input_image"),
            post("/v1/images/edits", {"prompt": "a", "image": url}, "image"),
            post("/v1/characters", {"url": url}, "url"),
            post(
                "/v1/chat/completions",
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "a"},
                                {"type": "image_url", "image_url": {"url": url}},
                            ],
                        }
                    ]
                },
                "input_reference",
            ),
            post(
                "/v1/chat/completions",
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}
                    ]
                },
                "video",
            ),
        ]
    await refused(client, rows, cases, code="url_not_allowed")


async def test_a_refused_or_repeated_create_leaves_no_staged_input(
    client: AsyncTestClient, rows: Rows, settings: Settings
) -> None:
    """A reference image or character video is staged only once the request is sure to be stored; a create
    answered from an earlier one (Idempotency-Key) removes what it staged."""
    image = "data:image/png;base64," + base64.b64encode(PNG).decode()
    video = base64.b64encode(MP4).decode()
    cases = [
        (
            "POST",
            "/v1/videos",
            {"json": {"prompt": "a", "input_image": image, "watermark": "maybe"}, "headers": CLIENT},
            400,
            "watermark",
        ),
        (
            "POST",
            "/v1/videos",
            {
                "json": {"prompt": "a", "input_image": image, "character_from_task": "gen_nope1"},
                "headers": CLIENT,
            },
            400,
            "character_from_task",
        ),
        (
            "POST",
            "/v1/videos",
            {
                "json": {
                    "prompt": "a",
                    "input_image": image,
                    "model": "sora-2-pro",
                    "character_url": video,
                    "character_timestamps": "0,9",
                },
                "headers": CLIENT,
            },
            400,
            "character_timestamps",
        ),
        (
            "POST",
            "/v1/images/generations",
            {"json": {"prompt": "a", "image": image}, "headers": {**CLIENT, "Idempotency-Key": "\x7f"}},
            400,
            "Idempotency-Key",
        ),
    ]
    await refused(client, rows, cases)
    await set_pool_plan(settings, "chatgpt_plus", client)
    try:
        pro = {"prompt": "a", "input_image": image, "model": "sora-2-pro"}
        await refused(client, rows, [("POST", "/v1/videos", {"json": pro, "headers": CLIENT}, 400, "model")])
    finally:
        await set_pool_plan(settings, "chatgpt_pro")

    for path, body in (
        ("/v1/videos", {"prompt": "once", "input_image": image, "character_url": video}),
        ("/v1/characters", {"video": video}),
    ):
        headers = {**CLIENT, "Idempotency-Key": f"staged-once-{path}"}
        before = rows.staged()
        first = await client.post(path, json=body, headers=headers)
        after_first = rows.staged()
        again = await client.post(path, json=body, headers=headers)
        assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
        assert after_first > before and rows.staged() == after_first
