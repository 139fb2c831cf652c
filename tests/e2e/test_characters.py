"""Characters (cameos) through the real stack: made from an upload, one of our videos, a video request's
options or a chat message; then mentioned by videos; failures; and what clients and the simulator saw."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import openai
import pytest

from tests import strict
from tests.e2e.conftest import execute, job_row, sdk
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

MP4 = (Path(__file__).resolve().parents[2] / "sim" / "assets" / "src.mp4").read_bytes()
MP4_DATA_URL = "data:video/mp4;base64," + base64.b64encode(MP4).decode()


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("characters")
    # Two accounts, so "on the same account" is a choice the gateway made, not the only possibility.
    stack.add_account(plan="chatgpt_pro")
    stack.add_account(plan="chatgpt_pro")
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


def task(stack: Stack, task_id: str) -> dict:
    response = stack.http.get(f"{stack.api_url}/v1/videos/tasks/{task_id}", headers=stack.client_headers())
    assert response.status_code == 200, response.text
    return response.json()


def wait_task(stack: Stack, task_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = task(stack, task_id)
        if current["state"] in ("succeeded", "failed"):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{task_id} still {current['state']} after {timeout}s; logs in {stack.logs}")
        time.sleep(0.2)


def create_character(stack: Stack, **kwargs) -> dict:
    response = stack.http.post(f"{stack.api_url}/v1/characters", headers=stack.client_headers(), **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "character" and body["id"].startswith("char_")
    return body


def sim_task(stack: Stack, job_id: str) -> dict:
    return stack.sim("GET", f"/tasks/{job_row(stack, job_id)['upstream_task_id']}")


def sim_cameo(stack: Stack, job_id: str) -> dict:
    return stack.sim("GET", f"/characters/{job_row(stack, job_id)['upstream_task_id']}")


def test_character_from_an_uploaded_mp4_then_a_video_mentions_it(stack: Stack) -> None:
    created = create_character(
        stack,
        files={"video": ("me.mp4", MP4, "video/mp4")},
        data={"timestamps": "1,3", "username": "@Fox_Hero", "instruction_set": "always smiles"},
    )
    assert created["status"] == "queued" and created["data"]["username"] is None
    done = wait_task(stack, created["id"])
    assert (done["kind"], done["state"], done["progress"], done["error"]) == (
        "character",
        "succeeded",
        100,
        None,
    )
    made = done["data"]["character"]
    assert made["username"] == "fox_hero" and made["cameo_id"] and made["character_id"]

    cameo = stack.sim("GET", f"/characters/{made['cameo_id']}")
    assert (cameo["character_id"], cameo["username"], cameo["visibility"]) == (
        made["character_id"],
        "fox_hero",
        "public",
    )
    assert (cameo["source"], cameo["timestamps"]) == ("upload", [1.0, 3.0])
    assert cameo["instruction_set"] == {"value": [{"type": "text", "value": "always smiles"}]}
    assert cameo["profile_asset_pointer"].startswith("sediment://")
    [upload] = [e for e in stack.sim("GET", "/requests", params={"route": "characters_upload"})]
    assert upload["body"]["file"]["sha256"] == hashlib.sha256(MP4).hexdigest()

    video = stack.create_video(prompt="@fox_hero runs through fresh snow")
    assert stack.wait_video(video["id"])["status"] == "completed"
    sent = sim_task(stack, video["id"])
    assert sent["prompt"] == "@fox_hero runs through fresh snow"
    assert sent["cameo_profiles"] == [{"character_id": made["character_id"], "username": "fox_hero"}]


def test_character_from_one_of_our_videos_on_the_account_that_made_it(
    stack: Stack, client: openai.OpenAI
) -> None:
    source = client.videos.create_and_poll(prompt="a juggler in a park", model="sora-2")
    assert source.status == "completed"
    row = job_row(stack, source.id)

    # The README's way: the SDK's generic post, by our video id and by its gen_… draft id.
    by_id = client.post("/characters", body={"from_task": source.id, "timestamps": "0,2"}, cast_to=object)
    by_draft = client.post(
        "/characters", body={"from_task": row["generation_id"], "async_mode": False}, cast_to=object
    )
    assert by_draft["status"] == "completed" and by_draft["data"]["character_id"]  # held until the end
    for created in (by_id, by_draft):
        assert wait_task(stack, created["id"])["state"] == "succeeded"
        assert job_row(stack, created["id"])["account_id"] == row["account_id"]
        cameo = sim_cameo(stack, created["id"])
        assert (cameo["source"], cameo["source_generation_id"]) == ("generation", row["generation_id"])
    assert sim_cameo(stack, by_id["id"])["timestamps"] == [0.0, 2.0]
    sent = [e["body"] for e in stack.sim("GET", "/requests", params={"route": "characters_from_generation"})]
    assert {"generation_id": row["generation_id"], "character_id": None, "timestamps": [0, 2]} in sent


def test_character_url_in_a_video_request_makes_the_character_first(stack: Stack) -> None:
    video = stack.create_video(
        prompt="dances on a stage", character_url=MP4_DATA_URL, character_timestamps="0,3"
    )
    character_id = video["character"]["id"]
    assert character_id.startswith("char_") and video["status"] == "queued"
    finished = stack.wait_video(video["id"], timeout=120)
    strict_body = dict(finished)
    assert strict_body.pop("character") == {"id": character_id}
    strict.video(json.dumps(strict_body).encode())
    assert finished["status"] == "completed"

    character = task(stack, character_id)
    assert character["state"] == "succeeded"
    username = character["data"]["character"]["username"]
    assert job_row(stack, video["id"])["account_id"] == job_row(stack, character_id)["account_id"]
    sent = sim_task(stack, video["id"])
    assert sent["prompt"] == f"@{username} dances on a stage"
    assert [p["username"] for p in sent["cameo_profiles"]] == [username]
    # The video started only once the character was done.
    assert sent["created_at"] >= sim_cameo(stack, character_id)["finalized_at"]


def test_character_create_makes_one_from_the_finished_video(stack: Stack) -> None:
    video = stack.create_video(prompt="a robot waves hello", character_create=True)
    character_id = video["character"]["id"]
    assert stack.wait_video(video["id"])["status"] == "completed"
    character = wait_task(stack, character_id)
    assert character["state"] == "succeeded" and character["data"]["character"]["username"]
    video_row, character_row = job_row(stack, video["id"]), job_row(stack, character_id)
    assert character_row["account_id"] == video_row["account_id"]
    cameo = sim_cameo(stack, character_id)
    assert (cameo["source"], cameo["source_generation_id"]) == ("generation", video_row["generation_id"])
    assert task(stack, video["id"])["character"] == {"id": character_id}


def test_a_failed_cameo_fails_the_job_and_the_video_waiting_for_it(stack: Stack) -> None:
    reason = "No single person faces the camera"
    stack.sim(
        "POST",
        "/faults",
        json={
            "fault": "cameo_failed",
            "route": "characters_upload",
            "count": 2,
            "params": {"reason": reason},
        },
    )
    created = create_character(stack, json={"video": MP4_DATA_URL})
    failed = wait_task(stack, created["id"])
    assert failed["state"] == "failed" and failed["data"]["character"]["character_id"] is None
    assert failed["error"]["code"] == "character_failed" and reason in failed["error"]["message"]

    video = stack.create_video(prompt="never made", character_url=base64.b64encode(MP4).decode())
    assert stack.wait_video(video["id"])["status"] == "failed"
    assert wait_task(stack, video["character"]["id"])["state"] == "failed"
    error = stack.get_video(video["id"])["error"]
    assert error["code"] == "character_failed" and reason in error["message"]
    assert error["message"].startswith("The character this job waited for failed")
    assert job_row(stack, video["id"])["upstream_task_id"] is None  # the upstream never saw the video


def test_a_cameo_that_never_finishes_ends_at_its_deadline_and_frees_its_slot(stack: Stack) -> None:
    source = stack.create_video(prompt="a lighthouse at dusk")
    assert stack.wait_video(source["id"])["status"] == "completed"
    stack.sim(
        "POST", "/faults", json={"fault": "cameo_stuck", "route": "characters_from_generation", "count": 1}
    )
    stuck = create_character(stack, json={"from_task": source["id"]})
    while task(stack, stuck["id"])["state"] != "running":
        time.sleep(0.2)
    # The account makes one character at a time: this one waits for the stuck one's slot.
    waiting = create_character(stack, json={"from_task": source["id"]})
    execute(stack, "UPDATE jobs SET deadline_at = now() WHERE id = $1", stuck["id"])
    failed = wait_task(stack, stuck["id"])
    assert failed["state"] == "failed" and failed["error"]["code"] == "deadline_exceeded"
    assert wait_task(stack, waiting["id"])["state"] == "succeeded"
    first, second = job_row(stack, stuck["id"]), job_row(stack, waiting["id"])
    assert first["account_id"] == second["account_id"] == job_row(stack, source["id"])["account_id"]
    assert second["submitted_at"] >= first["completed_at"]


def test_list_shows_the_finished_characters_newest_first(stack: Stack) -> None:
    response = stack.http.get(f"{stack.api_url}/v1/characters", headers=stack.client_headers())
    assert response.status_code == 200
    listed = response.json()
    assert listed["object"] == "list" and len(listed["data"]) >= 5
    assert all(c["status"] == "completed" and c["data"]["username"] for c in listed["data"])
    created = [c["created"] for c in listed["data"]]
    assert created == sorted(created, reverse=True)
    assert "fox_hero" in {c["data"]["username"] for c in listed["data"]}
    other = stack.http.get(f"{stack.api_url}/v1/characters", headers={"Authorization": "Bearer nope"})
    assert other.status_code == 401


def test_bad_character_requests_are_400_in_the_error_shape(stack: Stack) -> None:
    for body, param in (
        ({"video": MP4_DATA_URL, "timestamps": "0,9"}, "timestamps"),
        ({"timestamps": "0,3"}, "video"),
        ({"url": f"{stack.sim_url}/media/x.mp4"}, "url"),
    ):
        response = stack.http.post(
            f"{stack.api_url}/v1/characters", json=body, headers=stack.client_headers()
        )
        assert response.status_code == 400, response.text
        assert strict.error(response.content).param == param
    unknown = stack.http.get(
        f"{stack.api_url}/v1/videos/tasks/char_{'0' * 32}", headers=stack.client_headers()
    )
    assert unknown.status_code == 404 and strict.error(unknown.content).code == "not_found"


def test_streamed_chat_makes_a_character(stack: Stack, client: openai.OpenAI) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "make a character of me"},
                {"type": "video_url", "video_url": {"url": MP4_DATA_URL}},
            ],
        }
    ]
    with stack.http.stream(
        "POST",
        f"{stack.api_url}/v1/chat/completions",
        json={
            "model": "sora-2",
            "messages": messages,
            "stream": True,
            "character_options": {"timestamps": "0,2"},
        },
        headers=stack.client_headers(),
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert all(len(line) < 64 * 1024 and base64.b64encode(MP4[:48]).decode() not in line for line in lines)
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    progress = [c["choices"][0]["delta"].get("reasoning_content") for c in chunks]
    progress = [p for p in progress if p]
    assert {p["stage"] for p in progress} == {"character_creation"}
    assert progress[0]["status"] == "started" and progress[-1]["status"] == "completed"
    task_id = progress[0]["details"]["task_id"]
    [result] = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    username = task(stack, task_id)["data"]["character"]["username"]
    assert f"**@{username}**" in result["choices"][0]["delta"]["content"]
    assert result["choices"][0]["finish_reason"] == "stop"
    assert sim_cameo(stack, task_id)["timestamps"] == [0.0, 2.0]

    answer = client.chat.completions.create(
        model="avatar-create",
        messages=[{"role": "user", "content": "as a character"}],
        extra_body={"video": MP4_DATA_URL},
        response_format={"type": "json_object"},
    )
    result = json.loads(answer.choices[0].message.content)
    assert result["type"] == "character" and result["data"]["username"]
    assert (
        result["data"]["character_id"]
        == task(stack, result["data"]["id"])["data"]["character"]["character_id"]
    )
