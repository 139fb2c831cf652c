"""Images through the real stack with the official SDK: synchronous answers, each picture a queued job."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import execute, job_row, sdk
from tests.e2e.stack import Stack
from tests.e2e.test_video_kinds import png

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("images")
    stack.add_account()
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


def _image_id(url: str) -> str:
    match = re.search(r"/v1/images/(img_[0-9a-f]{32})/content", url)
    assert match, url
    return match.group(1)


def _sim_image_sha(stack: Stack, image_id: str) -> str:
    return stack.sim("GET", f"/tasks/{job_row(stack, image_id)['upstream_task_id']}")["image_sha256"][0]


def test_generate_n_images_as_urls(stack: Stack, client: openai.OpenAI) -> None:
    answer = client.images.generate(model="sora-image", prompt="a lighthouse at dawn", n=3, size="1536x1024")
    assert len(answer.data) == 3
    ids = [_image_id(item.url or "") for item in answer.data]
    assert len(set(ids)) == 3
    for item, image_id in zip(answer.data, ids, strict=True):
        assert item.revised_prompt == "a lighthouse at dawn"
        content = httpx.get(item.url or "").content  # signed link: no key needed
        assert content.startswith(b"\x89PNG") and hashlib.sha256(content).hexdigest() == _sim_image_sha(
            stack, image_id
        )
    sent = [e["body"] for e in stack.sim("GET", "/requests", params={"route": "video_gen"})]
    assert len(sent) == 3  # one upstream task per picture
    assert all((b["width"], b["height"], b["operation"]) == (540, 360, "simple_compose") for b in sent)
    task = stack.http.get(f"{stack.api_url}/v1/videos/tasks/{ids[0]}", headers=stack.client_headers()).json()
    assert task["kind"] == "image" and task["state"] == "succeeded" and task["data"]["images"][0]["url"]


def test_b64_json(stack: Stack, client: openai.OpenAI) -> None:
    answer = client.images.generate(model="sora-image-portrait", prompt="a cat", response_format="b64_json")
    [item] = answer.data
    raw = base64.b64decode(item.b64_json or "")
    assert raw.startswith(b"\x89PNG")
    sent = stack.sim("GET", "/requests", params={"route": "video_gen"})[-1]["body"]
    assert (sent["width"], sent["height"]) == (360, 540)


def test_edit_uploads_the_reference(stack: Stack, client: openai.OpenAI) -> None:
    reference = png(7)
    answer = client.images.edit(
        model="sora-image", prompt="add a hat", image=("in.png", io.BytesIO(reference))
    )
    assert len(answer.data) == 1
    sent = stack.sim("GET", "/requests", params={"route": "video_gen"})[-1]["body"]
    assert sent["operation"] == "remix"
    [item] = sent["inpaint_items"]
    upload = stack.sim("GET", f"/uploads/{item['upload_media_id']}")
    assert upload["sha256"] == hashlib.sha256(reference).hexdigest()


def test_refusals(stack: Stack, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        client.images.generate(model="sora-image", prompt="something forbidden [sim:violation]")
    assert rejected.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.images.generate(model="sora-image", prompt="many", n=5)
    assert too_many.value.param == "n"
    with pytest.raises(openai.BadRequestError) as no_image:
        stack_edit = stack.http.post(
            f"{stack.api_url}/v1/images/edits", files={"prompt": (None, "x")}, headers=stack.client_headers()
        )
        raise openai.BadRequestError("edit", response=stack_edit, body=stack_edit.json()["error"])
    assert no_image.value.body["code"] == "missing_required_parameter"  # type: ignore[index]


def test_an_image_parked_while_accounts_cool_down_runs_when_they_are_back(
    stack: Stack, client: openai.OpenAI
) -> None:
    execute(
        stack, "UPDATE accounts SET cooldown_until = now() + interval '3 seconds', cooldown_reason = 'test'"
    )
    started = time.monotonic()
    answer = client.images.generate(model="sora-image", prompt="patience", n=1)
    assert len(answer.data) == 1 and time.monotonic() - started >= 2.5
