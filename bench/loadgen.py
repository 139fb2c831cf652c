"""A small HTTP/1.1 load generator on raw asyncio streams.

A general-purpose client (httpx) spends about a millisecond of CPU on each request, which on a two-core
machine takes the CPU the server under test needs: measured that way, the generator is the bottleneck.
This one sends one pre-encoded request over keep-alive connections and reads back only the status line,
the headers it needs (``content-length``) and the body, at a few tens of microseconds per request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec


@dataclass
class Target:
    host: str
    port: int
    request: bytes

    @classmethod
    def post_json(cls, url: str, body: object, headers: dict[str, str]) -> Target:
        parts = urlsplit(url)
        payload = msgspec.json.encode(body)
        lines = [
            f"POST {parts.path or '/'} HTTP/1.1",
            f"host: {parts.netloc}",
            "content-type: application/json",
            f"content-length: {len(payload)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, request)


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.latencies.append(latency)
        else:
            self.errors += 1


class Connection:
    """One keep-alive connection sending one request at a time."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._target.host, self._target.port)

    async def send(self) -> int:
        """Sends the request and returns the status (0 when the connection failed). A kept-alive connection
        the server closed while it sat idle is opened again once, as HTTP clients do."""
        reused = self._writer is not None
        status = await self._exchange()
        if status == 0 and reused:
            status = await self._exchange()
        return status

    async def _exchange(self) -> int:
        try:
            if self._writer is None:
                await self._open()
            assert self._reader is not None and self._writer is not None
            self._writer.write(self._target.request)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await self._reader.readexactly(length)
            if close:
                self.close()
            return status
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Load:
    """Closed loop (``concurrency`` clients, each sending when its last answer came) or open loop (a fixed
    offered rate: each request is due at its slot and its latency counts from that slot, so a server that
    falls behind is charged for the queue it builds)."""

    def __init__(self, targets: list[Target], connections: int) -> None:
        self._targets = itertools.cycle(targets)
        self._idle = [Connection(next(self._targets)) for _ in range(connections)]
        self._busy = 0
        self.results = Results()

    def reset(self) -> None:
        self.results = Results()

    async def _one(self, due: float) -> None:
        # More outstanding than connections: open another, as an open-loop client must.
        connection = self._idle.pop() if self._idle else Connection(next(self._targets))
        status = await connection.send()
        self.results.record(status, time.perf_counter() - due)
        self._idle.append(connection)

    async def closed_loop(self, concurrency: int, duration: float) -> float:
        start = time.perf_counter()
        end = start + duration

        async def client() -> None:
            while time.perf_counter() < end:
                await self._one(time.perf_counter())

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - start

    async def open_loop(self, rate: float, duration: float) -> float:
        start = time.perf_counter()
        tasks: set[asyncio.Task] = set()
        total = int(rate * duration)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # A server far below the offered rate would take minutes to drain its queue: what is not answered
        # within one more duration counts as an error.
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(1.0, duration))
            for task in late:
                task.cancel()
            self.results.errors += len(late)
        return time.perf_counter() - start

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle = []
