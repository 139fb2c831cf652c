"""The character routes through the real app, Postgres and Redis (no worker: jobs stay queued here)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests import strict
from tests.integration.conftest import CLIENT, OTHER_CLIENT

pytestmark = pytest.mark.anyio

MP4 = (Path(__file__).resolve().parents[2] / "sim" / "assets" / "src.mp4").read_bytes()
MP4_B64 = base64.b64encode(MP4).decode()


async def test_a_character_from_an_uploaded_video_answers_queued_at_once(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/characters",
        files={"video": ("me.mp4", MP4, "video/mp4")},
        data={"timestamps": "1,3", "username": "@Jade_Fox", "display_name": "Jade"},
        headers=CLIENT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("char_") and body["object"] == "character"
    assert (body["status"], body["model"], body["error"]) == ("queued", "sora-2", None)
    assert body["data"] == {
        "cameo_id": None,
        "character_id": None,
        "username": None,
        "display_name": "Jade",
        "message": "Character creation is queued",
    }
    task = (await client.get(f"/v1/videos/tasks/{body['id']}", headers=CLIENT)).json()
    assert (task["kind"], task["state"], task["progress"]) == ("character", "queued", 0)
    assert task["data"] == {
        "character": {"cameo_id": None, "character_id": None, "username": None, "display_name": "Jade"}
    }
    # Only its owner sees it, and the video routes do not show character jobs.
    assert (await client.get(f"/v1/videos/tasks/{body['id']}", headers=OTHER_CLIENT)).status_code == 404
    assert (await client.get(f"/v1/videos/{body['id']}", headers=CLIENT)).status_code == 404
    listed = (await client.get("/v1/videos?limit=100", headers=CLIENT)).json()["data"]
    assert all(not video["id"].startswith("char_") for video in listed)


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({}, 400, "video", "missing_required_parameter"),
        ({"video": MP4_B64, "timestamps": "0,5"}, 400, "timestamps", "invalid_value"),
        ({"video": MP4_B64, "timestamps": "3,1"}, 400, "timestamps", "invalid_value"),
        ({"video_base64": "aGVsbG8gd29ybGQ="}, 400, "video_base64", "invalid_video"),
        ({"url": "http://169.254.169.254/latest/"}, 400, "url", "url_not_allowed"),
        ({"video": MP4_B64, "username": "no spaces allowed"}, 400, "username", "invalid_value"),
        ({"video": MP4_B64, "model": "sora-image"}, 400, "model", "invalid_value"),
        ({"video": MP4_B64, "model": "gpt-4o"}, 400, "model", "model_not_found"),
        ({"from_task": "gen_doesnotexist"}, 400, "from_task", "generation_not_found"),
        ({"from_task": "video_" + "0" * 32}, 404, "from_task", "not_found"),
        ({"from_task": "char_" + "0" * 32}, 404, "from_task", "not_found"),
    ],
)
async def test_bad_character_requests_are_clear_errors(
    client: AsyncTestClient, body: dict, status: int, param: str, code: str
) -> None:
    response = await client.post("/v1/characters", json=body, headers=CLIENT)
    assert response.status_code == status, response.text
    error = strict.error(response.content)
    assert (error.param, error.code) == (param, code)


async def test_from_task_needs_a_finished_video_of_the_caller(client: AsyncTestClient) -> None:
    video = (await client.post("/v1/videos", json={"prompt": "still queued"}, headers=CLIENT)).json()
    unfinished = await client.post("/v1/characters", json={"from_task": video["id"]}, headers=CLIENT)
    assert unfinished.status_code == 409 and strict.error(unfinished.content).code == "video_not_finished"
    someone_elses = await client.post("/v1/characters", json={"from_task": video["id"]}, headers=OTHER_CLIENT)
    assert someone_elses.status_code == 404


async def test_chained_video_names_its_character_job(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/videos",
        json={"prompt": "a dance", "character_url": MP4_B64, "character_timestamps": "0,2"},
        headers=CLIENT,
    )
    assert response.status_code == 200, response.text
    video = response.json()
    character_id = video["character"]["id"]
    assert character_id.startswith("char_") and video["status"] == "queued"
    task = (await client.get(f"/v1/videos/tasks/{video['id']}", headers=CLIENT)).json()
    assert task["character"] == {"id": character_id}
    character = (await client.get(f"/v1/videos/tasks/{character_id}", headers=CLIENT)).json()
    assert character["kind"] == "character" and character["state"] == "queued"

    both = await client.post(
        "/v1/videos",
        json={"prompt": "x", "character_url": MP4_B64, "character_create": True},
        headers=CLIENT,
    )
    assert both.status_code == 400 and strict.error(both.content).param == "character_create"


async def test_list_is_empty_before_any_character_is_finished(client: AsyncTestClient) -> None:
    response = await client.get("/v1/characters", headers=OTHER_CLIENT)
    assert response.status_code == 200
    assert response.json() == {"data": [], "object": "list"}
    assert (await client.get("/v1/characters")).status_code == 401
