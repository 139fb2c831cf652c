"""The storage contract, for both backends: a local directory, and S3 against a real S3-protocol server
(moto in server mode, over HTTP: signing, multipart uploads, ranged GETs and presigned URLs all real)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared import storage as storage_module
from shared.settings import Settings
from shared.storage import LocalStorage, S3Storage, Storage, StorageError, create_storage
from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def s3_storage(server: MotoServer, bucket: str, **kwargs) -> S3Storage:
    return S3Storage(
        bucket=bucket,
        endpoint_url=server.url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        path_style=True,
        **kwargs,
    )


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        backend: Storage = LocalStorage(tmp_path / "media")
    else:
        server: MotoServer = request.getfixturevalue("moto_s3")
        backend = s3_storage(server, server.new_bucket(), prefix="gw/", part_size=5 * MiB)
    try:
        yield backend
    finally:
        await backend.aclose()


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def collect(iterator: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in iterator])


async def test_write_read_size_and_overwrite(store: Storage) -> None:
    assert await store.write("videos/v1/video.mp4", chunks_of(b"first version")) == 13
    assert await store.write("videos/v1/video.mp4", chunks_of(b"second")) == 6
    assert await store.read("videos/v1/video.mp4") == b"second"
    assert await store.size("videos/v1/video.mp4") == 6
    assert await store.write("images/i1/empty.png", chunks_of(b"")) == 0
    assert await store.size("images/i1/empty.png") == 0
    assert await store.read("images/i1/empty.png") == b""


async def test_missing_keys(store: Storage) -> None:
    assert await store.size("videos/nothing/video.mp4") is None
    with pytest.raises(FileNotFoundError):
        await store.read("videos/nothing/video.mp4")
    with pytest.raises(FileNotFoundError):
        await collect(store.read_range("videos/nothing/video.mp4", 0, 10))
    for outside in ("../outside", "videos/../../outside", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            await store.size(outside)


async def test_a_large_file_streams_through_in_parts(store: Storage, moto_s3: MotoServer) -> None:
    data = os.urandom(256 * 1024) * 47  # 11.75 MiB: three parts of at least 5 MiB
    assert await store.write("videos/big/video.mp4", chunks_of(data)) == len(data)
    assert await store.size("videos/big/video.mp4") == len(data)
    body = await collect(store.read_range("videos/big/video.mp4", 0, len(data) - 1, chunk_size=MiB))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    # Across the boundary of the first and second part.
    across = await collect(store.read_range("videos/big/video.mp4", 5 * MiB - 10, 5 * MiB + 9))
    assert across == data[5 * MiB - 10 : 5 * MiB + 10]
    if isinstance(store, S3Storage):
        head = moto_s3.client().head_object(Bucket=store.bucket, Key="gw/videos/big/video.mp4")
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # a multipart upload of three parts
        assert head["ContentType"] == "video/mp4"


async def test_read_range_edges(store: Storage) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    await store.write("videos/r/video.mp4", chunks_of(data, 100))

    async def span(start: int, end: int) -> bytes:
        return await collect(store.read_range("videos/r/video.mp4", start, end, chunk_size=300))

    assert await span(0, 0) == data[:1]
    assert await span(0, 1023) == data
    assert await span(1023, 1023) == data[-1:]
    assert await span(1000, 5000) == data[1000:]  # past the end: what there is
    assert await span(1024, 2000) == b""  # starts at the end
    assert await span(5000, 6000) == b""
    assert await span(10, 9) == b""
    assert await span(300, 899) == data[300:900]  # several chunks
    await store.write("videos/r/empty.mp4", chunks_of(b""))
    assert await collect(store.read_range("videos/r/empty.mp4", 0, 0)) == b""


async def test_delete_prefix_takes_the_folder_and_nothing_beside_it(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "DELETE_BATCH", 2)  # several DeleteObjects calls for one folder
    for key in ("video.mp4", "thumbnail.webp", "extra/a.bin", "extra/b.bin", "extra/c.bin"):
        await store.write(f"videos/abc/{key}", chunks_of(b"x"))
    await store.write("videos/abcd/video.mp4", chunks_of(b"neighbour"))
    await store.write("inputs/abc/reference.png", chunks_of(b"input"))

    assert await store.delete_prefix("videos/abc") == 5
    assert await store.size("videos/abc/video.mp4") is None
    assert await store.size("videos/abc/extra/c.bin") is None
    assert await store.read("videos/abcd/video.mp4") == b"neighbour"
    assert await store.read("inputs/abc/reference.png") == b"input"
    assert await store.delete_prefix("videos/abc") == 0
    assert await store.delete_prefix("videos/never") == 0


async def test_presigned_url_serves_the_object_without_a_key(store: Storage) -> None:
    data = os.urandom(4096)
    await store.write("videos/p/video.mp4", chunks_of(data))
    url = await store.presigned_url("videos/p/video.mp4", 60, content_type="video/mp4")
    if isinstance(store, LocalStorage):
        assert url is None  # the API streams instead
        return
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "video/mp4"
        part = await http.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]


async def test_a_failed_source_leaves_no_object_and_no_open_upload(
    store: Storage, moto_s3: MotoServer
) -> None:
    async def breaks() -> AsyncIterator[bytes]:
        for _ in range(7):
            yield b"\x01" * MiB  # past one part: a multipart upload is open when it breaks
        raise ConnectionResetError("the upstream went away")

    with pytest.raises(ConnectionResetError):
        await store.write("videos/broken/video.mp4", breaks())
    assert await store.size("videos/broken/video.mp4") is None
    if isinstance(store, S3Storage):
        uploads = moto_s3.client().list_multipart_uploads(Bucket=store.bucket)
        assert not uploads.get("Uploads")
    else:
        assert list((store.root / "videos/broken").iterdir()) == []  # no .part file left


async def test_store_failures_are_storage_errors(moto_s3: MotoServer) -> None:
    missing = s3_storage(moto_s3, "no-such-bucket-here")
    try:
        with pytest.raises(StorageError):
            await missing.size("videos/x/video.mp4")
        with pytest.raises(OSError):  # the API answers OSError as 503 storage_unavailable
            await missing.write("videos/x/video.mp4", chunks_of(b"x"))
    finally:
        await missing.aclose()


async def test_the_setting_chooses_the_backend(moto_s3: MotoServer, tmp_path: Path) -> None:
    assert isinstance(create_storage(Settings(media_dir=str(tmp_path))), LocalStorage)
    bucket = moto_s3.new_bucket()
    env = moto_s3.env(bucket, prefix="/deploy-a/")
    chosen = create_storage(Settings.from_env(env))
    try:
        assert isinstance(chosen, S3Storage) and chosen.prefix == "deploy-a/"
        await chosen.write("images/i/image.png", chunks_of(b"png"))
        assert moto_s3.keys(bucket) == ["deploy-a/images/i/image.png"]
    finally:
        await chosen.aclose()
    with pytest.raises(ValueError, match="S3_BUCKET"):
        create_storage(Settings(storage_backend="s3"))
