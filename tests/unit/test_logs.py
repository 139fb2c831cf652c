from __future__ import annotations

import asyncio
import contextvars
import json
import logging

from shared import logs
from shared.models import Job
from shared.settings import Settings
from shared.sora.client import SoraClient, route_template

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImVtYWlsIjoiYUBiLmMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logs.install_record_factory()
    return logging.getLogger("test").makeRecord(
        "test", logging.INFO, __file__, 1, message, args, None, extra=extra
    )


def test_json_lines_carry_the_bound_context_and_extras() -> None:
    with logs.bind(job_id="video_1", account_id=7, task="videos.submit", task_id="t-1"):
        line = json.loads(logs.JsonFormatter().format(record("job %s submitted", "video_1", attempt=2)))
    assert line["msg"] == "job video_1 submitted" and line["level"] == "INFO" and line["logger"] == "test"
    assert (line["job_id"], line["account_id"], line["task"], line["task_id"]) == (
        "video_1",
        7,
        "videos.submit",
        "t-1",
    )
    assert line["attempt"] == 2
    unbound = json.loads(logs.JsonFormatter().format(record("idle")))
    assert "job_id" not in unbound and "account_id" not in unbound


def test_text_lines_end_with_the_context() -> None:
    formatter = logs.ContextTextFormatter(fmt="%(levelname)s %(message)s")
    with logs.bind(job_id="video_2", account_id=3):
        assert formatter.format(record("done")) == "INFO done [job_id=video_2 account_id=3]"
    assert formatter.format(record("done")) == "INFO done"


def test_credentials_never_reach_a_line() -> None:
    for text in (
        f"create failed for {JWT}",
        f"headers {{'Authorization': 'Bearer {JWT}'}}",
        "cookie __Secure-next-auth.session-token=abcdefghijklmnopqrstuvwxyz0123",
        '{"refresh_token": "rt_abcdefghijklmnopqrstuvwxyz", "access_token": "at-abcdefghijklmnop"}',
    ):
        out = logs.JsonFormatter().format(record(text))
        for secret in (
            JWT,
            "abcdefghijklmnopqrstuvwxyz0123",
            "rt_abcdefghijklmnopqrstuvwxyz",
            "at-abcdefghijklmnop",
        ):
            assert secret not in out, out
        assert "…" in out or "****" in out
    assert logs.redact("job video_1 completed (2125 bytes)") == "job video_1 completed (2125 bytes)"


def test_a_step_for_one_job_binds_it_and_only_while_it_runs() -> None:
    seen: list[dict] = []

    @logs.for_job
    async def step(ctx: object, job: Job) -> None:
        seen.append(logs.context())

    async def main() -> None:
        with logs.bind(account_id=9, task="poll.account"):
            await step(
                None,
                Job(
                    id="video_a",
                    kind="video",
                    owner="o",
                    model="m",
                    prompt="p",
                    seconds=10,
                    size="s",
                    account_id=9,
                ),
            )
            seen.append(logs.context())

    asyncio.run(main())
    assert seen == [
        {"job_id": "video_a", "account_id": 9, "task": "poll.account"},
        {"account_id": 9, "task": "poll.account"},
    ]


def test_what_a_task_binds_ends_with_it() -> None:
    def task() -> None:
        logs.bind_job(Job(id="video_b", kind="video", owner="o", model="m", prompt="p", seconds=10, size="s"))
        logs.bind_account(4)

    contextvars.copy_context().run(task)
    assert logs.context() == {}


def test_upstream_routes_are_templates_without_ids() -> None:
    assert route_template("/nf/create") == "/nf/create"
    assert route_template("/nf/pending/v2") == "/nf/pending/v2"
    assert route_template("/project_y/post/s_68e3a06dcd888191b150971da152c1f5") == "/project_y/post/{id}"
    assert route_template("/project_y/profile/username/fox_hero") == "/project_y/profile/username/{username}"
    assert route_template("/project_y/profile/username/check") == "/project_y/profile/username/check"
    assert (
        route_template("/project_y/profile/drafts/gen_01abc/long_video_extension")
        == "/project_y/profile/drafts/{id}/long_video_extension"
    )
    assert route_template("/somewhere/task_01png9mjsoiauy2h3593ju260fd6/x") == "/somewhere/{id}/x"
    client = SoraClient(Settings(sora_backend_url="http://sim:1/backend", sora_web_url="http://sim:1"))
    assert client.route_of("http://sim:1/backend/project_y/cameos/in_progress/cameo_1?x=1") == (
        "/project_y/cameos/in_progress/{id}"
    )
    assert client.route_of("http://sim:1/api/auth/session") == "/api/auth/session"
    assert client.route_of("https://elsewhere.example/a/b") == "other:/a/b"
