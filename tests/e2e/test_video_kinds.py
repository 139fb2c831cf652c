"""Every kind of video job through the real stack: what the simulator received, what clients got."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib

import openai
import pytest

from tests.e2e.conftest import job_row, sdk
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


def png(seed: int) -> bytes:
    """A tiny valid PNG; the seed makes each one's bytes unique."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([seed % 256, 0, 0]) * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    stack = make_stack("kinds", extra_env={"WATERMARK_PARSER_URL": "{sim_url}/parser"})
    stack.add_account(plan="chatgpt_pro")
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return sdk(stack)


def _sent(stack: Stack, route: str, video_id: str) -> dict:
    """The body the simulator received for this job's create call."""
    task_id = job_row(stack, video_id)["upstream_task_id"]
    task = stack.sim("GET", f"/tasks/{task_id}")
    bodies = [e["body"] for e in stack.sim("GET", "/requests", params={"route": route}) if e["body"]]
    matching = [b for b in bodies if b.get("prompt", b.get("user_prompt")) == task["prompt"]]
    assert matching, f"no {route} request for {video_id}"
    return matching[-1]


def test_image_to_video_from_a_data_url(stack: Stack) -> None:
    image = png(1)
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    video = stack.create_video(
        prompt="the picture comes alive", input_reference=data_url, model="sora-2-landscape"
    )
    assert stack.wait_video(video["id"])["status"] == "completed"
    sent = _sent(stack, "nf_create", video["id"])
    assert sent["orientation"] == "landscape"
    [item] = sent["inpaint_items"]
    assert item["kind"] == "upload"
    assert stack.sim("GET", f"/uploads/{item['upload_id']}")["sha256"] == hashlib.sha256(image).hexdigest()


def test_image_to_video_from_a_file_with_the_sdk(stack: Stack, client: openai.OpenAI) -> None:
    image = png(2)
    video = client.videos.create_and_poll(
        prompt="from a file part", model="sora-2", input_reference=("ref.png", io.BytesIO(image), "image/png")
    )
    assert video.status == "completed"
    [item] = _sent(stack, "nf_create", video.id)["inpaint_items"]
    assert stack.sim("GET", f"/uploads/{item['upload_id']}")["sha256"] == hashlib.sha256(image).hexdigest()


def test_reference_image_in_the_native_dialect_and_as_a_multipart_url_field(stack: Stack) -> None:
    image = png(3)
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    native = stack.http.post(
        f"{stack.api_url}/v1/videos/generations",
        json={"model": "sora-2", "prompt": "native with a picture", "image_urls": [data_url]},
        headers=stack.client_headers(),
    ).json()
    assert stack.wait_video(native["id"])["status"] == "completed"
    [item] = _sent(stack, "nf_create", native["id"])["inpaint_items"]
    assert stack.sim("GET", f"/uploads/{item['upload_id']}")["sha256"] == hashlib.sha256(image).hexdigest()

    refused = stack.http.post(
        f"{stack.api_url}/v1/videos",
        files={
            "prompt": (None, "form field url"),
            "input_reference[image_url]": (None, "http://127.0.0.1/a.png"),
        },
        headers=stack.client_headers(),
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input_reference[image_url]"


def test_remote_reference_urls_to_our_own_network_are_refused(stack: Stack) -> None:
    for url in (f"{stack.sim_url}/media/x.png", "http://169.254.169.254/latest/", "http://10.1.2.3/a.png"):
        response = stack.http.post(
            f"{stack.api_url}/v1/videos",
            json={"prompt": "steal secrets", "input_reference": url},
            headers=stack.client_headers(),
        )
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "url_not_allowed"


def test_remix_of_our_video_publishes_it_once(stack: Stack, client: openai.OpenAI) -> None:
    source = client.videos.create_and_poll(prompt="a paper boat on a pond", model="sora-2")
    posts_before = stack.sim("GET", "/stats")["requests_by_route"].get("post_create", 0)
    remixes = []
    for prompt in ("make it a storm", "make it night"):
        remix = client.videos.remix(source.id, prompt=prompt)
        assert remix.remixed_from_video_id == source.id
        remixes.append(client.videos.poll(remix.id))
    assert all(r.status == "completed" for r in remixes)
    assert stack.sim("GET", "/stats")["requests_by_route"]["post_create"] == posts_before + 1
    post_id = job_row(stack, source.id)["post_id"]
    assert (
        stack.sim("GET", f"/posts/{post_id}")["generation_id"] == job_row(stack, source.id)["generation_id"]
    )
    sent = _sent(stack, "nf_create", remixes[0].id)
    assert sent["remix_target_id"] == post_id and "size" not in sent


def test_remix_of_an_upstream_post_by_id_or_share_link(stack: Stack) -> None:
    post_id = stack.sim("POST", "/posts", json={})["id"]
    by_route = stack.http.post(
        f"{stack.api_url}/v1/videos/{post_id}/remix",
        json={"prompt": "but in winter"},
        headers=stack.client_headers(),
    ).json()
    by_link = stack.create_video(prompt=f"https://sora.chatgpt.com/p/{post_id} but in spring")
    for video in (by_route, by_link):
        assert video["remixed_from_video_id"] == post_id
        assert stack.wait_video(video["id"])["status"] == "completed"
        sent = _sent(stack, "nf_create", video["id"])
        assert sent["remix_target_id"] == post_id and post_id not in sent["prompt"]
    unknown = stack.http.post(
        f"{stack.api_url}/v1/videos/video_{'0' * 32}/remix",
        json={"prompt": "x"},
        headers=stack.client_headers(),
    )
    assert unknown.status_code == 404


def test_storyboard_goes_to_its_route_rewritten(stack: Stack) -> None:
    video = stack.create_video(
        prompt="moody noir [5.0s] a detective lights a match [5.0s] rain on the window"
    )
    assert stack.wait_video(video["id"])["status"] == "completed"
    sent = _sent(stack, "nf_create_storyboard", video["id"])
    assert sent["title"] == "Draft your video" and sent["model"] == "sy_8" and sent["size"] == "small"
    assert sent["prompt"].startswith(
        "current timeline:\nShot 1:\nduration: 5.0sec\nScene: a detective lights a match"
    )
    assert sent["prompt"].endswith("instructions:\nmoody noir")


def test_extension_continues_our_draft_on_its_account(stack: Stack) -> None:
    source = stack.create_video(prompt="a train leaves the station", seconds="10")
    assert stack.wait_video(source["id"])["status"] == "completed"
    generation_id = job_row(stack, source["id"])["generation_id"]
    extended = stack.create_video(model="sora2-extension-15s", prompt=f"{generation_id} it enters a tunnel")
    assert extended["seconds"] == "25"
    assert stack.wait_video(extended["id"])["status"] == "completed"
    sent = _sent(stack, "extension", extended["id"])
    assert sent == {"user_prompt": "it enters a tunnel", "extension_duration_s": 15, "enable_rewrite": True}
    assert job_row(stack, extended["id"])["account_id"] == job_row(stack, source["id"])["account_id"]


def test_native_task_dialect_and_pro_hd(stack: Stack) -> None:
    task = stack.http.post(
        f"{stack.api_url}/v1/videos/generations",
        json={"model": "sora-2-pro", "prompt": "a native task", "aspect_ratio": "16:9", "duration": 15},
        headers=stack.client_headers(),
    ).json()
    assert (task["id"], task["state"], task["progress"]) == (task["task_id"], "queued", 0)
    assert stack.wait_video(task["id"])["status"] == "completed"
    done = stack.http.get(
        f"{stack.api_url}/v1/videos/tasks/{task['id']}", headers=stack.client_headers()
    ).json()
    assert done["state"] == "succeeded" and done["data"]["videos"][0]["url"]
    sent = _sent(stack, "nf_create", task["id"])
    assert (sent["orientation"], sent["n_frames"], sent["model"], sent["size"]) == (
        "landscape",
        450,
        "sy_ore",
        "small",
    )

    hd = stack.create_video(prompt="in high definition", model="sora-2-pro", size="1792x1024")
    assert stack.wait_video(hd["id"])["status"] == "completed"
    assert _sent(stack, "nf_create", hd["id"])["size"] == "large"


def test_list_and_delete_with_the_sdk(stack: Stack, client: openai.OpenAI) -> None:
    seen = [video.id for video in client.videos.list(limit=2)]  # the SDK follows the cursor across pages
    assert len(seen) == len(set(seen)) >= 3
    finished = next(v for v in client.videos.list(limit=100) if v.status == "completed")
    deleted = client.videos.delete(finished.id)
    assert deleted.deleted is True and deleted.id == finished.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(finished.id)


def test_watermark_free_via_the_parser_then_the_post_is_deleted(stack: Stack, client: openai.OpenAI) -> None:
    video = stack.create_video(prompt="without the watermark", watermark=False)
    assert stack.wait_video(video["id"])["status"] == "completed"
    content = client.videos.download_content(video["id"]).read()
    task = stack.sim("GET", f"/tasks/{job_row(stack, video['id'])['upstream_task_id']}")
    assert (
        hashlib.sha256(content).hexdigest() == task["video_sha256"]
    )  # the clean file, not the watermarked one
    [parsed] = [e for e in stack.sim("GET", "/requests", params={"route": "parser"})][-1:]
    post_id = parsed["body"]["url"].rsplit("/", 1)[-1]
    assert stack.sim("GET", f"/posts/{post_id}")["deleted"] is True


def test_watermark_free_falls_back_to_the_watermarked_file(stack: Stack, client: openai.OpenAI) -> None:
    stack.sim("POST", "/faults", json={"fault": "http_502", "route": "parser", "count": 1})
    video = stack.create_video(prompt="the parser is down", watermark="false")
    assert stack.wait_video(video["id"])["status"] == "completed"
    content = client.videos.download_content(video["id"]).read()
    task = stack.sim("GET", f"/tasks/{job_row(stack, video['id'])['upstream_task_id']}")
    assert hashlib.sha256(content).hexdigest() == task["video_wm_sha256"]
    posts = [e for e in stack.sim("GET", "/requests", params={"route": "post_delete"})]
    assert posts, "the published post is deleted even when no clean link came back"


def test_styles_from_field_or_prompt(stack: Stack) -> None:
    by_field = stack.create_video(prompt="a parade", style="thanksgiving")
    by_prompt = stack.create_video(prompt="{anime} a duel at sunset")
    for video, style, prompt in ((by_field, "festive", "a parade"), (by_prompt, "anime", "a duel at sunset")):
        assert stack.wait_video(video["id"])["status"] == "completed"
        sent = _sent(stack, "nf_create", video["id"])
        assert (sent["style_id"], sent["prompt"]) == (style, prompt)
