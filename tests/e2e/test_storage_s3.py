"""Media in an S3-compatible store shared by every process: the real stack with STORAGE_BACKEND=s3 against
a real S3-protocol server (moto in server mode). The worker uploads, one API streams with Range, a second
API with STORAGE_REDIRECT=true answers 307 to presigned URLs, and media.expire removes expired media."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from dev.procs import command
from tests.e2e.conftest import job_row, sdk
from tests.e2e.stack import Stack, free_port
from tests.infra import ROOT, Services
from tests.s3 import MotoServer

pytestmark = pytest.mark.e2e

# Long enough for the downloads below, short enough to watch it expire.
MEDIA_TTL_S = 20
PREFIX = "gw/"


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> str:
    return moto_s3.new_bucket()


@pytest.fixture(scope="module")
def stacks(services: Services, moto_s3: MotoServer, bucket: str) -> Iterator[tuple[Stack, str]]:
    """The stack, and a second API process on its database and bucket with redirects turned on. Both APIs
    boot together, which on two cores is cheaper than one after the other."""
    env = {**moto_s3.env(bucket, PREFIX), "MEDIA_TTL_S": str(MEDIA_TTL_S), "MEDIA_EXPIRE_INTERVAL_S": "1"}
    stack = Stack(services, "s3", extra_env=env)
    port = free_port()
    redirect_env = {
        **stack.env,
        "PORT": str(port),
        "STORAGE_REDIRECT": "true",
        "STORAGE_REDIRECT_TTL_S": "60",
    }
    with open(stack.logs / "api-redirect.log", "ab") as log:
        stack.procs["api-redirect"] = subprocess.Popen(  # stopped with the stack
            command("api"),
            cwd=ROOT,
            env=redirect_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        stack.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if stack.http.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert stack.procs["api-redirect"].poll() is None, f"see {stack.logs / 'api-redirect.log'}"
            assert time.monotonic() < deadline, "the redirecting API did not come up"
            time.sleep(0.2)
        stack.add_account()
        yield stack, url
    finally:
        stack.stop()


def test_video_through_s3_streamed_redirected_then_expired(
    stacks: tuple[Stack, str], moto_s3: MotoServer, bucket: str
) -> None:
    stack, redirecting_api = stacks
    client = sdk(stack)
    video = client.videos.create_and_poll(model="sora-2", prompt="a heron in the reeds", seconds="10")
    assert video.status == "completed", video
    folder = f"{PREFIX}videos/{video.id}/"

    # The worker wrote to the bucket, under the prefix, and nothing to its local media directory.
    assert moto_s3.keys(bucket, folder) == [folder + "thumbnail.webp", folder + "video.mp4"]
    assert not (stack.logs / "media").exists() or not any((stack.logs / "media").rglob("*.mp4"))

    # Streamed by the API from the store, whole and in ranges.
    content = client.videos.download_content(video.id).read()
    task_id = job_row(stack, video.id)["upstream_task_id"]
    assert hashlib.sha256(content).hexdigest() == stack.sim("GET", f"/tasks/{task_id}")["video_wm_sha256"]
    size = len(content)
    url = f"{stack.api_url}/v1/videos/{video.id}/content"
    first = stack.http.get(url, headers={**stack.client_headers(), "Range": "bytes=0-99"})
    assert first.status_code == 206 and first.content == content[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    tail = stack.http.get(url, headers={**stack.client_headers(), "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]
    beyond = stack.http.get(url, headers={**stack.client_headers(), "Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"

    # Redirect mode: a 307 to a presigned URL of the store that serves the file without our key.
    redirect_url = f"{redirecting_api}/v1/videos/{video.id}/content"
    answer = httpx.get(redirect_url, headers=stack.client_headers())
    assert answer.status_code == 307, answer.text
    location = answer.headers["location"]
    assert (
        location.startswith(f"{moto_s3.url}/{bucket}/{folder}video.mp4?") and "X-Amz-Signature=" in location
    )
    assert answer.headers["cache-control"] == "private, no-store"
    direct = httpx.get(location)
    assert direct.status_code == 200 and direct.content == content
    assert direct.headers["content-type"] == "video/mp4"
    ranged = httpx.get(location, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == content[100:200]
    # The official SDK follows it; so does a signed download link from the answer (no key at all).
    redirected_sdk = openai.OpenAI(base_url=f"{redirecting_api}/v1", api_key=stack.api_key, max_retries=0)
    assert redirected_sdk.videos.download_content(video.id).read() == content
    thumbnail = httpx.get(f"{redirect_url}?variant=thumbnail", headers=stack.client_headers())
    assert thumbnail.status_code == 307 and thumbnail.headers["location"].startswith(
        f"{moto_s3.url}/{bucket}/{folder}thumbnail.webp?"
    )
    task = stack.http.get(f"{stack.api_url}/v1/videos/tasks/{video.id}", headers=stack.client_headers())
    signed = task.json()["data"]["videos"][0]["url"].replace(stack.api_url, redirecting_api)
    assert httpx.get(signed, follow_redirects=True).content == content

    # Retention: once expires_at passes, beat's media.expire deletes the objects and marks the job, once.
    deadline = time.monotonic() + MEDIA_TTL_S + 30
    while job_row(stack, video.id)["media_purged_at"] is None:
        assert time.monotonic() < deadline, f"media never purged; logs in {stack.logs}"
        time.sleep(0.5)
    assert moto_s3.keys(bucket, folder) == []
    for base in (stack.api_url, redirecting_api):
        expired = httpx.get(f"{base}/v1/videos/{video.id}/content", headers=stack.client_headers())
        assert expired.status_code == 404 and expired.json()["error"]["code"] == "expired"
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id).read()
