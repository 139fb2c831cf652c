"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright, against the whole
stack (simulator, API, worker, beat).

It logs in, adds a simulator account through the Accounts form, starts a video through the API and watches
the job's row go from in_progress to completed through the job event stream, in the same document (no
reload). The simulator's clock is manual, so the job waits, running, until the test moves time on: the page
is sure to see it live. A screenshot of each page is kept in test-artifacts/console/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.e2e.stack import ARTIFACTS, Stack

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "console"
# Generous bounds for waits; nothing here asserts how long anything takes.
WAIT_MS = 60_000


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_chromium() -> str:
    """Installs Debian's chromium package with apt; what went wrong, if it did not work."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available here"
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif shutil.which("sudo"):
        sudo = ["sudo", "-n"]
    else:
        return "installing it needs root (or password-less sudo)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "chromium"]
    # With stale package lists the install fails; read them again and retry once.
    for steps in ([install], [[*sudo, "apt-get", "update"], install]):
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                problem = (done.stderr or done.stdout).strip().splitlines()[-3:]
                break
        else:
            return ""
    return f"`apt-get install -y chromium` failed: {' / '.join(problem)}"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _chromium()
    if found is None:
        problem = _install_chromium()
        found = _chromium()
        if found is None:
            pytest.skip(f"Chromium is missing and could not be installed ({problem or 'no chromium binary'})")
    return found


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    return make_stack("console-ui", extra_env={"SIM_CLOCK": "manual"})


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        # A refused login is a 401 the browser reports too; a CSP violation or a script error is a problem.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    # The page must run clean.
    opened.on("console", note)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == []


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_operator_watches_a_job_complete_live(stack: Stack, page: Page) -> None:
    # Logging in: a stranger lands on the login page and comes back where they were going.
    page.goto(f"{stack.api_url}/console/accounts")
    expect(page).to_have_url(f"{stack.api_url}/console/login?next=%2Fconsole%2Faccounts")
    shot(page, "login")
    page.get_by_label("Admin key").fill("not the key")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the admin key.")
    page.get_by_label("Admin key").fill(stack.admin_key)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Accounts", exact=True)).to_be_visible()

    # An account from the simulator, added through the form.
    seeded = stack.sim("POST", "/accounts", json={"plan": "chatgpt_plus", "email": "console-ui@example.com"})
    page.locator("summary", has_text="Add an account").click()
    form = page.locator("#add form")
    form.get_by_label("Access token").fill(seeded["access_token"])
    form.get_by_label("Session token (optional)").fill(seeded["session_token"])
    form.get_by_label("Refresh token (optional)").fill(seeded["refresh_token"])
    form.get_by_label("Client id of the refresh token").fill(seeded["client_id"])
    form.get_by_role("button", name="Add").click()
    expect(page.locator(".notice")).to_contain_text("Added account")
    row = page.locator("tr[id^=account-]", has_text="console-ui@example.com")
    expect(row.locator("[data-field=status]")).to_have_text("active")
    assert seeded["access_token"] not in page.content()  # shown masked
    shot(page, "accounts")

    # The jobs page is open when a job is started through the API: its row joins the table, and follows
    # it. The simulator's clock stands still, so the job stays running until it is moved on.
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.locator("table.jobs[data-listening]")).to_have_count(1)
    page.evaluate("window.sameDocument = 'yes'")
    video = stack.create_video(prompt="a red fox crossing the console")
    job_row = page.locator(f"#job-{video['id']}")
    expect(job_row.locator("[data-field=status]")).to_have_text("in_progress", timeout=WAIT_MS)
    expect(page.locator("td.empty")).to_have_count(0)
    shot(page, "jobs-running")

    # Time moves on upstream; the row follows the job's events to the end, in the same document.
    stack.sim("POST", "/clock/advance", json={"seconds": 600})
    expect(job_row.locator("[data-field=status]")).to_have_text("completed", timeout=WAIT_MS)
    expect(job_row.locator("[data-field=progress]")).to_have_text("100%")
    expect(job_row.get_by_role("button", name="Cancel")).to_have_count(0)  # the finished row, re-rendered
    assert page.evaluate("window.sameDocument") == "yes"

    # The row opens to the job's upstream ids, attempts and the video itself.
    job_row.get_by_role("button", name=video["id"]).click()
    detail = page.locator(f"#detail-{video['id']}")
    expect(detail).to_contain_text("Upstream task")
    preview = detail.locator("video.preview")
    expect(preview).to_have_count(1)
    media = page.request.get(f"{stack.api_url}{preview.get_attribute('src')}")
    assert media.status == 200 and media.headers["content-type"] == "video/mp4"
    shot(page, "jobs")
    page.goto(f"{stack.api_url}/console/jobs/{video['id']}")
    expect(page.get_by_role("heading", name=f"Job {video['id']}")).to_be_visible()
    shot(page, "job")

    # The overview counts it.
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("figure.chart").first).to_contain_text("1 completed")
    expect(page.locator("[data-kind=video]")).to_have_text("0 / 3")
    shot(page, "overview")

    # A client key, shown once.
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Label").fill("browser test")
    page.get_by_label("Rate limit (creates per minute; empty: unlimited)").fill("20")
    page.get_by_role("button", name="Make key").click()
    new_key = page.locator("#new-key")
    expect(new_key).to_contain_text("sk-gw-")
    listed = stack.http.get(
        f"{stack.api_url}/v1/models", headers={"Authorization": f"Bearer {new_key.inner_text()}"}
    )
    assert listed.status_code == 200
    shot(page, "keys")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
