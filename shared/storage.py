"""Where finished media lives. One interface; the local-directory backend for now."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the media directory: {key!r}")
        return path

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Writes atomically: readers see the whole file or nothing."""
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        size = 0
        async with await anyio.open_file(tmp, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                await out.write(chunk)
        await anyio.Path(tmp).rename(path)
        return size

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
        """Yields bytes ``start..end`` inclusive."""
        async with await anyio.open_file(self._path(key), "rb") as src:
            await src.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await src.read(min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))
