"""Where media lives: finished videos, images and thumbnails, and staged inputs.

One interface, two backends chosen by ``STORAGE_BACKEND``:

- ``local``: a directory (``MEDIA_DIR``), for ``make run`` and a single host;
- ``s3``: any S3-compatible object store (AWS S3, MinIO, R2, Ceph…), so API and worker pods that share
  no disk see the same objects.

Keys are relative paths such as ``videos/<job id>/video.mp4``. Both backends write atomically (a reader sees
the whole object or none), stream in both directions (a 500 MB video is never held in memory), and answer
a missing key the same way: ``size`` is None, ``read``/``read_range`` raise ``FileNotFoundError``. Any other
failure of the store is a ``StorageError``, an ``OSError``, which the API answers as 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio

from shared.settings import Settings

# S3 refuses multipart parts under 5 MiB (except the last one).
MIN_PART_SIZE = 5 * 1024 * 1024
# At most this many keys per DeleteObjects call (the S3 limit).
DELETE_BATCH = 1000
_CONTENT_TYPES = {".mp4": "video/mp4", ".webp": "image/webp", ".png": "image/png", ".jpg": "image/jpeg"}


class StorageError(OSError):
    """The store failed (unreachable, refused, misconfigured): not the caller's fault."""


def content_type_of(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


class Storage(ABC):
    @abstractmethod
    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Stores what ``chunks`` yields under ``key`` and returns its size. Atomic: readers see the whole
        object or nothing (the old one, if any)."""

    @abstractmethod
    async def read(self, key: str) -> bytes:
        """The whole object (small ones only: staged inputs, images)."""

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

    @abstractmethod
    def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        """Yields bytes ``start..end`` inclusive; past the end of the object it yields what there is."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under the folder ``prefix`` (``videos/<id>`` means ``videos/<id>/…``);
        returns how many there were. Deleting what is not there is no error."""

    async def presigned_url(self, key: str, expires_s: int, *, content_type: str | None = None) -> str | None:
        """A URL that serves the object without our key for ``expires_s`` seconds; None when the backend
        has no such thing (then the API streams)."""
        return None

    async def aclose(self) -> None:  # noqa: B027 (nothing to close by default)
        """Releases connections."""


# What LocalStorage.write holds in memory before it writes.
WRITE_BUFFER = 1024 * 1024


class _PartFile:
    """A file written under a temporary name, then renamed into place; each method runs in a thread."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._out: Any = None

    def write(self, parts: list[bytes]) -> None:
        if self._out is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.tmp, "wb")  # noqa: SIM115 (closed by finish or discard)
        self._out.writelines(parts)

    def finish(self, parts: list[bytes], path: Path) -> None:
        self.write(parts)
        self._out.close()
        self.tmp.rename(path)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
        self.tmp.unlink(missing_ok=True)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._inside = os.path.join(self.root, "")

    def _path(self, key: str) -> Path:
        # Lexical, with no filesystem calls on the event loop: ``..`` and absolute keys cannot leave the root.
        path = os.path.normpath(os.path.join(self.root, key))
        if not path.startswith(self._inside):
            raise ValueError(f"storage key escapes the media directory: {key!r}")
        return Path(path)

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Collects up to ``WRITE_BUFFER`` bytes, then writes them in one call to a thread: a thumbnail or
        a short video costs one thread hand-off, not one per directory, open, chunk, close and rename."""
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
        parts: list[bytes] = []
        buffered = size = 0
        out = _PartFile(tmp)
        try:
            async for chunk in chunks:
                parts.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    await anyio.to_thread.run_sync(out.write, parts)
                    size += buffered
                    parts, buffered = [], 0
            await anyio.to_thread.run_sync(out.finish, parts, path)
        except BaseException:
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(out.discard)
            raise
        return size + buffered

    async def read(self, key: str) -> bytes:
        return await anyio.Path(self._path(key)).read_bytes()

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self._path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self._path(key), "rb") as src:
            await src.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await src.read(min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    async def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix)

        def remove() -> int:
            if not path.is_dir():
                return 0
            count = sum(1 for item in path.rglob("*") if item.is_file())
            shutil.rmtree(path, ignore_errors=True)
            return count

        return await anyio.to_thread.run_sync(remove)


class S3Storage(Storage):
    """An S3-compatible bucket through aiobotocore (botocore's S3 model, signing and retries on aiohttp).

    Writes buffer one part at a time: an object smaller than ``part_size`` is one PutObject, a larger one a
    multipart upload (aborted if the source fails), so memory stays near ``part_size`` whatever the size.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = False,
        part_size: int = 8 * 1024 * 1024,
        public_endpoint_url: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = max(part_size, MIN_PART_SIZE)
        self._endpoint_url = endpoint_url or None
        self._public_endpoint_url = public_endpoint_url or None
        self._region = region or None
        # No keys: botocore's own chain decides (AWS_* variables, web identity, instance role).
        self._credentials = (
            {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id
            else {}
        )
        self._path_style = path_style
        self._clients: dict[str, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        return cls(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            path_style=settings.s3_path_style,
            part_size=settings.s3_part_size,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )

    # Clients ----------------------------------------------------------------------------------------

    async def _client(self, which: str = "api") -> Any:
        """The client for requests (``api``), or the one that signs links for clients (``public``: the same
        store under the address clients reach it by, when that differs)."""
        client = self._clients.get(which)
        if client is not None:
            return client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if which not in self._clients:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                endpoint = self._public_endpoint_url if which == "public" else self._endpoint_url
                config = AioConfig(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if self._path_style else "auto"},
                    retries={"max_attempts": 4, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                    # Each download being streamed holds one connection while it lasts.
                    max_pool_connections=64,
                    # Checksums only where S3 requires them: several S3-compatible stores refuse the
                    # CRC trailers botocore otherwise adds to every upload.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                creator = get_session().create_client(
                    "s3", region_name=self._region, endpoint_url=endpoint, config=config, **self._credentials
                )
                client = await creator.__aenter__()
                try:
                    if which == "api":
                        # Once per process: a missing bucket or bad credentials fail loudly here. A HEAD of a
                        # key in a missing bucket would look just like a missing key.
                        with self._errors(f"bucket {self.bucket}", missing_is_error=True):
                            await client.head_bucket(Bucket=self.bucket)
                except BaseException:
                    await creator.__aexit__(None, None, None)
                    raise
                self._stack.push_async_exit(creator.__aexit__)
                self._clients[which] = client
            return self._clients[which]

    async def aclose(self) -> None:
        self._clients.clear()
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        await stack.aclose()

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad storage key: {key!r}")
        return self.prefix + key

    @contextlib.contextmanager
    def _errors(self, key: str, *, missing_is_error: bool = False) -> Iterator[None]:
        """Maps the client's errors: a missing object is FileNotFoundError, anything else StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound") and not missing_is_error:
                raise FileNotFoundError(f"no object {key!r}") from None
            raise StorageError(f"S3 {code or 'error'} on {key!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 unreachable on {key!r}: {type(exc).__name__}") from exc

    # Objects ----------------------------------------------------------------------------------------

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        s3 = await self._client()
        full = self._key(key)
        common = {"Bucket": self.bucket, "Key": full}
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def send_part() -> None:
            nonlocal upload_id
            if upload_id is None:
                created = await s3.create_multipart_upload(**common, ContentType=content_type_of(key))
                upload_id = created["UploadId"]
            number = len(parts) + 1
            sent = await s3.upload_part(**common, UploadId=upload_id, PartNumber=number, Body=bytes(buffer))
            parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            buffer.clear()

        with self._errors(key):
            try:
                async for chunk in chunks:
                    buffer += chunk
                    size += len(chunk)
                    if len(buffer) >= self.part_size:
                        await send_part()
                if upload_id is None:
                    await s3.put_object(**common, Body=bytes(buffer), ContentType=content_type_of(key))
                    return size
                if buffer:
                    await send_part()
                await s3.complete_multipart_upload(
                    **common, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                # A half-made upload is invisible but billed until aborted.
                if upload_id is not None:
                    with contextlib.suppress(Exception):
                        await s3.abort_multipart_upload(**common, UploadId=upload_id)
                raise
        return size

    async def read(self, key: str) -> bytes:
        s3 = await self._client()
        with self._errors(key):
            answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
            async with answer["Body"] as body:
                return await body.read()

    async def size(self, key: str) -> int | None:
        s3 = await self._client()
        try:
            with self._errors(key):
                head = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    async def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        if end < start:
            return
        from botocore.exceptions import ClientError

        s3 = await self._client()
        with self._errors(key):
            try:
                answer = await s3.get_object(
                    Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
                )
            except ClientError as exc:
                # A range that starts past the end (or any range of an empty object): nothing to yield,
                # as reading a file past its end gives nothing.
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return
                raise
            async with answer["Body"] as body:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk

    async def delete_prefix(self, prefix: str) -> int:
        s3 = await self._client()
        folder = self._key(prefix.strip("/")) + "/"
        deleted = 0
        with self._errors(prefix):
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                for at in range(0, len(keys), DELETE_BATCH):
                    batch = keys[at : at + DELETE_BATCH]
                    answer = await s3.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    errors = answer.get("Errors") or []
                    if errors:
                        first = errors[0]
                        raise StorageError(
                            f"S3 refused to delete {len(errors)} object(s) under {prefix!r}: "
                            f"{first.get('Code')} {first.get('Key')}"
                        )
                    deleted += len(batch)
        return deleted

    async def presigned_url(self, key: str, expires_s: int, *, content_type: str | None = None) -> str:
        s3 = await self._client("public" if self._public_endpoint_url else "api")
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        with self._errors(key):
            return await s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=max(1, int(expires_s))
            )


def create_storage(settings: Settings) -> Storage:
    """The backend ``STORAGE_BACKEND`` names; nothing connects until the first call."""
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.media_dir)
