"""The operator console (/console) through the real app, Postgres and Redis: login and sessions, CSRF, and
every page and action, with its effect checked through the admin JSON API or the database."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from threading import Thread
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.jobs import attempt_entry, new_video_id
from shared.jwtclaims import PROFILE_CLAIM
from shared.models import Account, Job, JobState
from shared.names import Keys
from shared.secrets import key_fingerprint
from shared.settings import Settings
from shared.timeutil import utcnow
from tests.integration.conftest import ADMIN, CLIENT
from tests.integration.test_api_lifecycle import Worker
from tests.integration.test_metrics import open_streams

pytestmark = pytest.mark.anyio

HTMX = {"HX-Request": "true"}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def access_token(email: str) -> str:
    """A JWT-shaped access token (the gateway reads its claims without checking a signature)."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"exp": int(time.time()) + 86400, PROFILE_CLAIM: {"email": email}, "n": uuid.uuid4().hex}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.{part({'sig': uuid.uuid4().hex})}"


def csrf_in(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, html[:500]
    return found.group(1)


async def log_in(client: AsyncTestClient, key: str = "admin-test", **headers: str) -> Any:
    form = await client.get("/console/login")
    assert form.status_code == 200, form.text
    return await client.post(
        "/console/login",
        data={"admin_key": key, "csrf_token": csrf_in(form.text), "next": "/console"},
        headers=headers,
        follow_redirects=False,
    )


class Console:
    """A logged-in browser: its cookie jar holds the session, ``csrf`` is the page's token."""

    def __init__(self, client: AsyncTestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def get(self, path: str, *, htmx: bool = False, **kwargs: Any) -> Any:
        headers = HTMX if htmx else {}
        return await self.client.get(path, headers=headers, follow_redirects=False, **kwargs)

    async def post(self, path: str, data: dict | None = None, *, htmx: bool = True, csrf: bool = True) -> Any:
        headers = dict(HTMX) if htmx else {}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await self.client.post(path, data=data or {}, headers=headers, follow_redirects=False)


@pytest.fixture
async def console(client: AsyncTestClient) -> Console:
    answer = await log_in(client)
    assert answer.status_code == 303, answer.text
    home = await client.get("/console")
    assert home.status_code == 200
    return Console(client, csrf_in(home.text))


class Database:
    """The test database, for jobs in a given state; what a test puts there goes again when it ends."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings, pool_size=2)
        self.sessions = create_sessionmaker(self.engine)
        self.jobs: list[str] = []

    def __call__(self) -> Any:
        return self.sessions()

    async def last_account_id(self) -> int:
        async with self.sessions() as session:
            return int(
                (await session.execute(sa.select(sa.func.coalesce(sa.func.max(Account.id), 0)))).scalar_one()
            )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    try:
        yield database
    finally:
        async with database() as session:
            await session.execute(sa.delete(Job).where(Job.id.in_(database.jobs)))
            await session.commit()
        await database.engine.dispose()


@pytest.fixture(autouse=True)
async def leave_the_pool_as_found(settings: Settings) -> AsyncIterator[None]:
    """The integration tests share one database: the accounts a test adds (some end disabled) go again."""
    database = Database(settings)
    before = await database.last_account_id()
    try:
        yield
    finally:
        async with database() as session:
            await session.execute(sa.delete(Account).where(Account.id > before))
            await session.commit()
        await database.engine.dispose()


async def insert_job(db: Database, **values: Any) -> Job:
    fields: dict[str, Any] = {
        "id": new_video_id(),
        "kind": "video",
        "owner": key_fingerprint("sk-test-one"),
        "model": "sora-2",
        "prompt": f"console test {uuid.uuid4().hex[:8]}",
        "seconds": 10,
        "size": "1280x720",
        "deadline_at": utcnow() + timedelta(hours=1),
        **values,
    }
    job = Job(**fields)
    db.jobs.append(job.id)
    async with db() as session:
        session.add(job)
        await session.commit()
        await session.refresh(job)
    return job


async def pool(client: AsyncTestClient) -> dict[int, dict]:
    listed = await client.get("/api/tokens", headers=ADMIN)
    return {account["id"]: account for account in listed.json()["data"]}


async def added_account(console: Console, **fields: str) -> dict:
    email = f"console-{uuid.uuid4().hex[:10]}@example.com"
    answer = await console.post("/console/accounts/add", {"token": access_token(email), **fields})
    assert answer.status_code == 200, answer.text
    found = [a for a in (await pool(console.client)).values() if a["email"] == email]
    assert len(found) == 1
    return found[0]


# Login, sessions, access ------------------------------------------------------------------------------

PAGES = ["/console", "/console/accounts", "/console/jobs", "/console/keys", "/console/accounts?edit=1"]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_send_a_stranger_to_the_login_page(client: AsyncTestClient, path: str) -> None:
    answer = await client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")
    # htmx follows HX-Redirect instead of swapping a login page into the current one.
    partial = await client.get(path, headers=HTMX, follow_redirects=False)
    assert partial.status_code == 401 and partial.headers["hx-redirect"] == "/console/login"
    # The admin key as a bearer header is not a console session.
    assert (await client.get(path, headers=ADMIN, follow_redirects=False)).status_code == 303


ACTIONS = [
    "/console/accounts/add",
    "/console/accounts/import",
    "/console/accounts/1/test",
    "/console/accounts/1/refresh",
    "/console/accounts/1/enable",
    "/console/accounts/1/disable",
    "/console/accounts/1/edit",
    "/console/accounts/1/delete",
    "/console/jobs/video_00000000000000000000000000000000/cancel",
    "/console/keys/create",
    "/console/keys/1/revoke",
    "/console/logout",
]


@pytest.mark.parametrize("path", ACTIONS)
async def test_every_action_needs_a_login(client: AsyncTestClient, path: str) -> None:
    answer = await client.post(path, data={"label": "nobody"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"


async def test_actions_without_a_login_change_nothing(client: AsyncTestClient) -> None:
    before = len((await client.get("/api/keys", headers=ADMIN)).json()["data"])
    await client.post("/console/keys/create", data={"label": "stranger"}, headers=HTMX)
    assert len((await client.get("/api/keys", headers=ADMIN)).json()["data"]) == before
    account_id = next(iter(await pool(client)))
    await client.post(f"/console/accounts/{account_id}/disable")
    assert (await pool(client))[account_id]["enabled"] is True


async def test_login_sets_a_strict_http_only_session_cookie(client: AsyncTestClient) -> None:
    answer = await log_in(client)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("sg_console="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    assert (await client.get("/console", follow_redirects=False)).status_code == 200


async def test_the_cookie_is_secure_behind_an_https_proxy(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(settings)) as client:
        answer = await log_in(client, **{"X-Forwarded-Proto": "https"})
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("sg_console="))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_a_wrong_key_is_refused_in_the_page(client: AsyncTestClient) -> None:
    answer = await log_in(client, key="not-the-key")
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    assert "That is not the admin key." in answer.text
    assert "sg_console=" not in "".join(answer.headers.get_list("set-cookie"))
    assert (await client.get("/console", follow_redirects=False)).status_code == 303
    # A client key is not the admin key either.
    assert (await log_in(client, key="sk-test-one")).status_code == 401


async def test_the_login_form_needs_its_own_csrf_token(client: AsyncTestClient) -> None:
    # A cross-site form post: no token and no login cookie (SameSite=Strict keeps it home).
    forged = await client.post(
        "/console/login", data={"admin_key": "admin-test", "next": "/console"}, follow_redirects=False
    )
    assert forged.status_code == 403 and "expired" in forged.text
    assert "sg_console=" not in "".join(forged.headers.get_list("set-cookie"))
    await client.get("/console/login")
    wrong = await client.post(
        "/console/login", data={"admin_key": "admin-test", "csrf_token": "guess"}, follow_redirects=False
    )
    assert wrong.status_code == 403


async def test_repeated_failed_logins_are_throttled(client: AsyncTestClient, settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    key = Keys(settings.redis_prefix).console_login_failures("testclient")
    await redis.delete(key)  # other tests' wrong keys count too
    try:
        for _ in range(10):
            assert (await log_in(client, key="guess")).status_code == 401
        refused = await log_in(client)  # even the right key, for a while
        assert refused.status_code == 429 and "Too many failed logins" in refused.text
        assert int(refused.headers["retry-after"]) > 0
    finally:
        await redis.delete(key)
        await redis.aclose()
    assert (await log_in(client)).status_code == 303


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/console/jobs?status=failed", "/console/jobs?status=failed"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/consolewhatever", "/console"),
        ("/v1/videos", "/console"),
        ("/console/../v1/videos", "/console"),
    ],
)
async def test_after_login_only_console_pages(client: AsyncTestClient, target: str, landing: str) -> None:
    form = await client.get("/console/login", params={"next": target})
    assert f'name="next" value="{landing}"' in form.text.replace("&amp;", "&")
    answer = await client.post(
        "/console/login",
        data={"admin_key": "admin-test", "csrf_token": csrf_in(form.text), "next": target},
        follow_redirects=False,
    )
    assert answer.headers["location"] == landing


async def test_logout_ends_the_session_on_the_server(console: Console) -> None:
    cookie = console.client.cookies.get("sg_console")
    assert cookie
    answer = await console.post("/console/logout", htmx=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert (await console.get("/console")).status_code == 303
    # The old cookie, replayed, names a session that no longer exists.
    console.client.cookies.set("sg_console", cookie, path="/console")
    assert (await console.get("/console")).status_code == 303


async def test_a_forged_or_foreign_cookie_is_refused(console: Console, settings: Settings) -> None:
    session_id, _, signature = (console.client.cookies.get("sg_console") or "").partition(".")
    console.client.cookies.set("sg_console", f"{session_id}.{signature[:-2]}xx", path="/console")
    assert (await console.get("/console")).status_code == 303
    # Signed with another ADMIN_KEY: changing the admin key ends every session.
    console.client.cookies.set("sg_console", f"{session_id}.{signature}", path="/console")
    other = msgspec.structs.replace(settings, admin_key="another-admin-key")
    async with AsyncTestClient(app=create_app(other)) as client:
        client.cookies.set("sg_console", f"{session_id}.{signature}", path="/console")
        assert (await client.get("/console", follow_redirects=False)).status_code == 303


@pytest.mark.parametrize("path", [p for p in ACTIONS if not p.endswith("/logout")])
async def test_changes_without_the_csrf_token_are_refused(console: Console, path: str) -> None:
    missing = await console.post(path, {"label": "no token"}, csrf=False)
    assert missing.status_code == 403
    assert "CSRF" in missing.text and missing.headers["content-type"].startswith("text/html")
    assert missing.headers["hx-retarget"] == "#flash"
    console.csrf = "not-the-token"
    assert (await console.post(path, {"label": "wrong token"})).status_code == 403


async def test_a_refused_change_has_no_effect(console: Console) -> None:
    keys_before = (await console.client.get("/api/keys", headers=ADMIN)).json()["data"]
    assert (await console.post("/console/keys/create", {"label": "x"}, csrf=False)).status_code == 403
    assert (await console.client.get("/api/keys", headers=ADMIN)).json()["data"] == keys_before
    account = await added_account(console)
    answer = await console.post(f"/console/accounts/{account['id']}/disable", csrf=False, htmx=False)
    assert answer.status_code == 403
    assert (await pool(console.client))[account["id"]]["enabled"] is True
    # Logout is a change too.
    assert (await console.post("/console/logout", csrf=False)).status_code == 403
    assert (await console.get("/console")).status_code == 200


async def test_the_token_works_as_a_plain_form_field(console: Console) -> None:
    """Without JavaScript the forms still work: the token rides in the form and the whole page comes back."""
    answer = await console.post(
        "/console/keys/create", {"label": "plain form", "csrf_token": console.csrf}, htmx=False, csrf=False
    )
    assert answer.status_code == 200
    assert "<html" in answer.text and "sk-gw-" in answer.text


async def test_pages_carry_security_headers_and_no_third_party_script(console: Console) -> None:
    for path in ("/console", "/console/accounts", "/console/jobs", "/console/keys", "/console/login"):
        if path == "/console/login":
            await console.post("/console/logout")
        page = await console.get(path)
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        assert scripts and all(src.startswith("/console/static/") for src in scripts)
        assert "<script>" not in page.text  # nothing inline
    htmx = await console.get("/console/static/htmx-2.0.11.min.js")
    assert htmx.status_code == 200 and "javascript" in htmx.headers["content-type"]
    assert b"htmx" in htmx.content[:200]


async def test_an_htmx_request_gets_the_main_part_only(console: Console) -> None:
    whole = await console.get("/console/keys")
    part = await console.get("/console/keys", htmx=True)
    assert "<html" in whole.text and "<html" not in part.text
    assert "<h1>Client keys</h1>" in part.text


# Overview ---------------------------------------------------------------------------------------------


async def test_overview_counts_jobs_failures_errors_and_capacity(console: Console, db: Database) -> None:
    await insert_job(db, state=JobState.RUNNING)
    done = utcnow()
    await insert_job(db, state=JobState.COMPLETED, progress=100, completed_at=done)
    await insert_job(
        db,
        state=JobState.FAILED,
        completed_at=done,
        error_code="generation_failed",
        attempts=[attempt_entry(1, "heavy_load", "busy"), attempt_entry(1, "console_test_class", "odd")],
    )
    page = await console.get("/console")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'data-state="running">[1-9]', text)
    assert text.count("<svg") == 2 and 'class="ok"' in text and 'class="bad"' in text
    assert "console_test_class" in text and "heavy_load" in text
    assert re.search(r'data-kind="video">\d+ / [1-9]', text)
    assert 'href="/schema"' in text
    assert "set <code>FLOWER_URL</code>" in text


async def test_overview_links_flower_when_configured(settings: Settings) -> None:
    with_flower = msgspec.structs.replace(settings, flower_url="http://flower.example:5555")
    async with AsyncTestClient(app=create_app(with_flower)) as client:
        await log_in(client)
        page = await client.get("/console")
        assert 'href="http://flower.example:5555"' in page.text


# Accounts ---------------------------------------------------------------------------------------------


async def test_accounts_page_lists_the_pool_with_secrets_masked(console: Console) -> None:
    email = f"masked-{uuid.uuid4().hex[:8]}@example.com"
    token = access_token(email)
    added = await console.post(
        "/console/accounts/add",
        {"token": token, "proxy_url": "http://user:hunter2@proxy.example:3128", "remark": "from the test"},
    )
    assert added.status_code == 200
    assert "Added account" in added.text
    page = await console.get("/console/accounts")
    assert email in page.text and "from the test" in page.text
    assert token not in page.text and token[:6] + "…" + token[-4:] in page.text
    assert "hunter2" not in page.text and "user:****@proxy.example:3128" in page.text
    for kind in ("video 0/3", "image 0/1", "character 0/1"):
        assert kind in page.text


async def test_adding_an_account(console: Console) -> None:
    account = await added_account(console, video_concurrency="2", image_concurrency="4", remark="two videos")
    assert account["video_concurrency"] == 2 and account["image_concurrency"] == 4
    assert account["remark"] == "two videos" and account["status"] == "active"


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"video_concurrency": "9"}, "'video_concurrency' must be 0 to 3", "video_concurrency"),
        ({"image_concurrency": "many"}, "'image_concurrency' must be a whole number", "image_concurrency"),
        ({"proxy_url": "ftp://proxy.example"}, "'proxy_url' must be an http(s) or socks5 URL", "proxy_url"),
        ({"token": ""}, "'token' is required", "token"),
        ({"token": "has spaces in it"}, "'token' must be printable ASCII without spaces", "token"),
    ],
)
async def test_adding_shows_validation_errors_in_the_page(
    console: Console, fields: dict, message: str, param: str
) -> None:
    before = len(await pool(console.client))
    answer = await console.post("/console/accounts/add", {"token": access_token("x@example.com"), **fields})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert message.replace("'", "&#39;") in answer.text
    assert f'data-param="{param}"' in answer.text and 'aria-invalid="true"' in answer.text
    assert '{"error"' not in answer.text  # not the JSON error body
    assert len(await pool(console.client)) == before


async def test_adding_the_same_token_twice_is_refused_in_the_page(console: Console) -> None:
    token = access_token(f"twice-{uuid.uuid4().hex[:8]}@example.com")
    assert (await console.post("/console/accounts/add", {"token": token})).status_code == 200
    again = await console.post("/console/accounts/add", {"token": token})
    assert again.status_code == 409 and "already in the pool" in again.text


async def test_importing_tokens_of_any_kind(console: Console) -> None:
    first, second = (f"import-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2))
    token = access_token(first)
    lines = [token, access_token(second), "not a token at all", token]
    answer = await console.post(
        "/console/accounts/import", {"tokens": "\n".join(lines), "kind": "at", "video_concurrency": "1"}
    )
    assert answer.status_code == 200, answer.text
    assert "Import: 2 imported, 0 updated, 1 duplicates, 1 failed." in answer.text
    assert answer.text.count('data-result="imported"') == 2 and 'data-result="failed"' in answer.text
    emails = {a["email"]: a for a in (await pool(console.client)).values()}
    assert emails[first]["video_concurrency"] == 1 and second in emails


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"tokens": "  \n "}, 400, "holds no token"),
        ({"tokens": "a.b.c", "kind": "jwt"}, 400, "'kind' must be one of auto, at, st, rt"),
        ({"tokens": "a.b.c", "character_concurrency": "7"}, 400, "'character_concurrency' must be 0 to 3"),
    ],
)
async def test_import_validation_errors_are_shown_in_the_page(
    console: Console, fields: dict, status: int, message: str
) -> None:
    answer = await console.post("/console/accounts/import", fields)
    assert answer.status_code == status
    assert message.replace("'", "&#39;") in answer.text and "<details open" in answer.text.replace(" id=", "")


async def test_disable_and_enable(console: Console) -> None:
    account = await added_account(console)
    disabled = await console.post(f"/console/accounts/{account['id']}/disable")
    assert (
        disabled.status_code == 200
        and f"Account {account['id']} disabled: now disabled (manual)" in disabled.text
    )
    assert (await pool(console.client))[account["id"]]["status"] == "disabled"
    enabled = await console.post(f"/console/accounts/{account['id']}/enable")
    assert enabled.status_code == 200 and "now active" in enabled.text
    assert (await pool(console.client))[account["id"]]["enabled"] is True


async def test_testing_an_account_reads_the_upstream_again(console: Console) -> None:
    account = await added_account(console)
    answer = await console.post(f"/console/accounts/{account['id']}/test")
    assert answer.status_code == 200 and f"Account {account['id']} tested" in answer.text
    # The test backend does not answer: what could not be read is recorded and shown, the account stays.
    after = (await pool(console.client))[account["id"]]
    assert after["check_errors"] and after["enabled"] is True


async def test_a_failed_refresh_is_shown_at_its_account(console: Console) -> None:
    account = await added_account(console)
    answer = await console.post(f"/console/accounts/{account['id']}/refresh")
    assert answer.status_code == 409
    assert "The token could not be refreshed" in answer.text and 'class="row-problem"' in answer.text


async def test_editing_concurrency_proxy_and_remark(console: Console) -> None:
    account = await added_account(console, proxy_url="http://old.example:8080", remark="before")
    form = await console.get(f"/console/accounts?edit={account['id']}", htmx=True)
    assert form.status_code == 200 and f"Edit account {account['id']}" in form.text
    assert 'value="before"' in form.text
    saved = await console.post(
        f"/console/accounts/{account['id']}/edit",
        {
            "video_concurrency": "1",
            "image_concurrency": "8",
            "character_concurrency": "0",
            "proxy_url": "socks5://new.example:1080",
            "remark": "after",
        },
    )
    assert saved.status_code == 200 and f"Account {account['id']} saved." in saved.text
    after = (await pool(console.client))[account["id"]]
    assert (after["video_concurrency"], after["image_concurrency"], after["character_concurrency"]) == (
        1,
        8,
        0,
    )
    assert after["proxy_url"] == "socks5://new.example:1080" and after["remark"] == "after"
    # An empty proxy field keeps the proxy (it is shown masked); the box removes it.
    await console.post(f"/console/accounts/{account['id']}/edit", {"remark": "after"})
    assert (await pool(console.client))[account["id"]]["proxy_url"] == "socks5://new.example:1080"
    await console.post(f"/console/accounts/{account['id']}/edit", {"remark": "", "clear_proxy": "on"})
    cleared = (await pool(console.client))[account["id"]]
    assert cleared["proxy_url"] is None and cleared["remark"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_concurrency": "9"}, "'image_concurrency' must be 0 to 8"),
        ({"video_concurrency": "-1"}, "'video_concurrency' must be 0 to 3"),
        ({"proxy_url": "not a url"}, "'proxy_url' must be an http(s) or socks5 URL"),
        ({"remark": "x" * 3000}, "'remark' is longer than 2048 characters"),
    ],
)
async def test_edit_validation_errors_keep_the_form_open(
    console: Console, fields: dict, message: str
) -> None:
    account = await added_account(console, remark="unchanged")
    answer = await console.post(f"/console/accounts/{account['id']}/edit", fields)
    assert answer.status_code == 400
    assert message.replace("'", "&#39;") in answer.text and f"Edit account {account['id']}" in answer.text
    assert (await pool(console.client))[account["id"]]["remark"] == "unchanged"


async def test_deleting_asks_first_then_deletes(console: Console) -> None:
    account = await added_account(console)
    confirm = await console.get(f"/console/accounts?delete={account['id']}", htmx=True)
    assert f"Delete account {account['id']}" in confirm.text and "/delete" in confirm.text
    assert account["id"] in await pool(console.client)  # asking deletes nothing
    gone = await console.post(f"/console/accounts/{account['id']}/delete")
    assert gone.status_code == 200 and f"Account {account['id']} deleted." in gone.text
    assert account["id"] not in await pool(console.client)
    again = await console.post(f"/console/accounts/{account['id']}/delete")
    assert again.status_code == 404 and f"No account with id {account['id']}" in again.text


async def test_a_busy_account_is_deleted_only_when_forced(console: Console, db: Database) -> None:
    account = await added_account(console)
    await insert_job(db, state=JobState.RUNNING, account_id=account["id"])
    refused = await console.post(f"/console/accounts/{account['id']}/delete")
    assert refused.status_code == 409 and "jobs in progress" in refused.text
    assert account["id"] in await pool(console.client)
    forced = await console.post(f"/console/accounts/{account['id']}/delete", {"force": "on"})
    assert forced.status_code == 200 and account["id"] not in await pool(console.client)


async def test_unknown_accounts_answer_a_page_not_json(console: Console) -> None:
    for answer in (
        await console.post("/console/accounts/999999/disable"),
        await console.get("/console/accounts?edit=999999"),
    ):
        assert answer.status_code == 404 and "No account with id 999999" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    bad = await console.get("/console/accounts?edit=abc")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")


# Jobs -------------------------------------------------------------------------------------------------


async def test_jobs_newest_first_with_filters(console: Console, db: Database) -> None:
    mine = key_fingerprint(f"sk-filter-{uuid.uuid4().hex}")
    older = await insert_job(
        db, owner=mine, created_at=utcnow() - timedelta(minutes=5), state=JobState.QUEUED
    )
    newer = await insert_job(db, owner=mine, kind="image", state=JobState.COMPLETED, account_id=424242)
    page = await console.get("/console/jobs", params={"owner": mine})
    assert page.status_code == 200
    assert page.text.index(newer.id) < page.text.index(older.id)
    by_state = await console.get("/console/jobs", params={"owner": mine, "status": "completed"})
    assert newer.id in by_state.text and older.id not in by_state.text
    by_kind = await console.get("/console/jobs", params={"owner": mine, "kind": "video"})
    assert older.id in by_kind.text and newer.id not in by_kind.text
    by_account = await console.get("/console/jobs", params={"account": "424242"})
    assert newer.id in by_account.text and older.id not in by_account.text
    # Rows of running jobs follow the event stream; finished ones do not.
    assert re.search(rf'id="job-{older.id}"[^>]*data-open', page.text)
    assert not re.search(rf'id="job-{newer.id}"[^>]*data-open', page.text)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "bogus"}, "&#39;status&#39; must be one of"),
        ({"kind": "audio"}, "&#39;kind&#39; must be one of video, image, character"),
        ({"account": "abc"}, "&#39;account&#39; must be an account id"),
        ({"before": "video_" + "0" * 32}, "No job with id"),
    ],
)
async def test_bad_job_filters_are_shown_in_the_page(console: Console, params: dict, message: str) -> None:
    answer = await console.get("/console/jobs", params=params)
    assert answer.status_code == 400 and message in answer.text
    assert '<form class="filters"' in answer.text


async def test_a_job_opens_to_its_attempts_ids_error_and_preview(console: Console, db: Database) -> None:
    failed = await insert_job(
        db,
        state=JobState.FAILED,
        upstream_task_id=f"task_{uuid.uuid4().hex}",
        error_code="upstream_lost",
        error_message="The task vanished upstream",
        attempts=[attempt_entry(7, "rate_limited", "429 from upstream")],
        completed_at=utcnow(),
    )
    detail = await console.get(f"/console/jobs/{failed.id}", htmx=True)
    assert detail.status_code == 200 and detail.text.lstrip().startswith('<tr class="detail"')
    for expected in (failed.upstream_task_id, "upstream_lost", "The task vanished upstream", "rate_limited"):
        assert expected in detail.text
    done = await insert_job(
        db,
        state=JobState.COMPLETED,
        progress=100,
        generation_id="gen_console",
        media_key="videos/x/video.mp4",
        thumbnail_key="videos/x/thumb.webp",
        completed_at=utcnow(),
        expires_at=utcnow() + timedelta(hours=1),
    )
    page = await console.get(f"/console/jobs/{done.id}")
    assert "<html" in page.text and "gen_console" in page.text
    preview = re.search(r'<video[^>]+src="([^"]+)"[^>]*poster="([^"]+)"', page.text)
    assert preview, page.text
    src = preview.group(1).replace("&amp;", "&")
    assert src.startswith(f"/v1/videos/{done.id}/content?exp=") and "&sig=" in src
    assert preview.group(2).replace("&amp;", "&") == src + "&variant=thumbnail"
    # The link is signed: it works without a key (no media stored here, so the store answers 404).
    fetched = await console.client.get(src)
    assert fetched.status_code == 404 and fetched.json()["error"]["code"] == "variant_not_available"
    missing = await console.get("/console/jobs/video_" + "0" * 32, htmx=True)
    assert missing.status_code == 404 and missing.headers["hx-retarget"] == "#flash"


async def test_cancelling_a_job_from_its_row(console: Console, db: Database) -> None:
    job = await insert_job(db, state=JobState.QUEUED)
    row = await console.post(f"/console/jobs/{job.id}/cancel")
    assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="job-{job.id}"')
    assert "cancelled" in row.text and "data-open" not in row.text
    async with db() as session:
        state = (await session.execute(sa.select(Job.state, Job.error_code).where(Job.id == job.id))).one()
    assert tuple(state) == (JobState.FAILED, "cancelled")
    again = await console.post(f"/console/jobs/{job.id}/cancel")
    assert again.status_code == 409 and "already ended" in again.text
    assert again.headers["hx-retarget"] == "#flash"


async def test_the_row_endpoint_renders_a_finished_row(console: Console, db: Database) -> None:
    job = await insert_job(db, state=JobState.COMPLETED, progress=100, completed_at=utcnow())
    row = await console.get(f"/console/jobs/{job.id}/row", htmx=True)
    assert row.status_code == 200 and 'data-status="completed"' in row.text and "100%" in row.text


async def test_a_new_job_is_announced_and_its_row_comes_with_its_detail_row(
    console: Console, settings: Settings
) -> None:
    redis = Redis.from_url(settings.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys(settings.redis_prefix).jobs_created_channel())
    try:
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        made = await console.client.post("/v1/videos", json={"prompt": "announced"}, headers=CLIENT)
        job_id = made.json()["id"]
        announced = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message["data"].decode() == job_id:
                announced = job_id
                break
        assert announced == job_id
    finally:
        await pubsub.aclose()
        await redis.aclose()
    row = await console.get(f"/console/jobs/{job_id}/row", params={"new": "true"}, htmx=True)
    assert row.status_code == 200
    assert f'id="job-{job_id}"' in row.text and f'id="detail-{job_id}"' in row.text
    assert "data-open" in row.text  # followed until it ends


async def test_the_newest_jobs_page_listens_for_new_jobs_an_older_page_does_not(console: Console) -> None:
    newest = await console.get("/console/jobs", params={"kind": "video"})
    assert 'data-live="kind=video"' in newest.text
    job = (await console.client.post("/v1/videos", json={"prompt": "anchor"}, headers=CLIENT)).json()["id"]
    older = await console.get("/console/jobs", params={"before": job})
    assert older.status_code == 200 and "data-live" not in older.text


async def test_the_events_stream_relays_the_listed_jobs_until_they_end(
    console: Console, settings: Settings
) -> None:
    created = [
        (await console.client.post("/v1/videos", json={"prompt": f"live row {n}"}, headers=CLIENT)).json()[
            "id"
        ]
        for n in range(2)
    ]

    def finish() -> None:
        async def run() -> None:
            worker = Worker(settings)
            try:
                deadline = time.monotonic() + 15
                while open_streams("console_jobs") < 1:
                    assert time.monotonic() < deadline, "the console stream never opened"
                    await asyncio.sleep(0.05)
                for job_id in created:
                    await worker.complete(job_id)
            finally:
                await worker.close()

        asyncio.run(run())

    finisher = Thread(target=finish, daemon=True)
    finisher.start()
    stream = await console.get("/console/jobs/events", params={"ids": ",".join(created)})
    finisher.join(20)
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    text = stream.text.replace("\r\n", "\n")
    events = [
        json.loads(block.split("data: ", 1)[1])
        for block in text.split("\n\n")
        if block.startswith("event: job")
    ]
    for job_id in created:
        mine = [e for e in events if e["job_id"] == job_id]
        assert mine[0]["status"] == "queued" and mine[-1]["status"] == "completed"
        assert [e["seq"] for e in mine] == sorted({e["seq"] for e in mine})
    assert text.rstrip().endswith("event: end\ndata: {}")


async def test_the_events_stream_wants_job_ids(console: Console) -> None:
    for ids in ("", "not-a-job", ",".join(["video_" + "0" * 32] * 101)):
        answer = await console.get("/console/jobs/events", params={"ids": ids})
        assert answer.status_code == 400 and "&#39;ids&#39; takes 1 to 100 job ids" in answer.text
    many = ",".join(["video_" + "0" * 32] * 101)
    answer = await console.get("/console/jobs/events", params={"ids": many, "live": "true"})
    assert answer.status_code == 400 and "&#39;ids&#39; takes 0 to 100 job ids" in answer.text
    unknown = await console.get("/console/jobs/events", params={"ids": "video_" + "0" * 32})
    assert unknown.status_code == 200 and unknown.text.replace("\r\n", "\n").strip() == "event: end\ndata: {}"


# Keys -------------------------------------------------------------------------------------------------


async def test_a_new_key_is_shown_once_and_works(console: Console) -> None:
    made = await console.post("/console/keys/create", {"label": "team console", "rate_limit": "30"})
    assert made.status_code == 200
    key = re.search(r'id="new-key">(sk-gw-[^<]+)<', made.text)
    assert key, made.text
    assert key_fingerprint(key.group(1)) in made.text  # its owner id, for the jobs filter
    listed = (await console.client.get("/api/keys", headers=ADMIN)).json()["data"]
    row = next(k for k in listed if k["label"] == "team console")
    assert row["rate_limit"] == 30 and key.group(1).startswith(row["prefix"])
    page = await console.get("/console/keys")
    assert key.group(1) not in page.text and "team console" in page.text
    works = await console.client.get("/v1/models", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert works.status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate_limit": "0"}, "&#39;rate_limit&#39; must be 1 to 100000 requests per minute"),
        ({"rate_limit": "fast"}, "&#39;rate_limit&#39; must be a whole number"),
        ({"label": "x" * 201}, "&#39;label&#39; is at most 200 characters"),
    ],
)
async def test_key_validation_errors_are_shown_in_the_page(
    console: Console, fields: dict, message: str
) -> None:
    before = len((await console.client.get("/api/keys", headers=ADMIN)).json()["data"])
    answer = await console.post("/console/keys/create", fields)
    assert answer.status_code == 400 and message in answer.text and "new-key" not in answer.text
    assert len((await console.client.get("/api/keys", headers=ADMIN)).json()["data"]) == before


async def test_revoking_a_key(console: Console) -> None:
    made = await console.post("/console/keys/create", {"label": f"revoke-{uuid.uuid4().hex[:6]}"})
    key = re.search(r'id="new-key">(sk-gw-[^<]+)<', made.text).group(1)  # type: ignore[union-attr]
    listed = (await console.client.get("/api/keys", headers=ADMIN)).json()["data"]
    key_id = next(k["id"] for k in listed if key.startswith(k["prefix"]) and k["revoked_at"] is None)
    confirm = await console.get(f"/console/keys?revoke={key_id}", htmx=True)
    assert "Revoke key" in confirm.text and f"/console/keys/{key_id}/revoke" in confirm.text
    revoked = await console.post(f"/console/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and "revoked." in revoked.text
    assert re.search(rf'id="key-{key_id}" data-revoked="yes"', revoked.text)
    refused = await console.client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    unknown = await console.post("/console/keys/999999/revoke")
    assert unknown.status_code == 404 and "No API key with id 999999" in unknown.text


async def test_accounts_made_here_are_real_pool_rows(console: Console, db: Database) -> None:
    """The console writes through the same code as /api/tokens: sealed tokens and a token hash."""
    account = await added_account(console)
    async with db() as session:
        row = (await session.execute(sa.select(Account).where(Account.id == account["id"]))).scalar_one()
    assert row.token_hash and row.access_token_enc and "." not in row.access_token_enc[:20]
