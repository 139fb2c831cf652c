"""Run several child processes in one terminal, each output line prefixed with its name.

Every child gets its own session (and so its own process group): a Ctrl-C in the terminal
reaches only us, and we decide the order and grace of the shutdown.

Stopping sends SIGTERM to each child itself, not its group: a Celery worker's warm shutdown
lets its pool processes finish their tasks, and SIGTERM reaching the pool directly would kill
them mid-task. Whatever is left after the grace period, grandchildren included, gets SIGKILL
as a group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Foreground colors that read on both dark and light terminals.
COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    proc: asyncio.subprocess.Process
    color: str
    pump: asyncio.Task[None] = field(init=False)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    @property
    def finished(self) -> bool:
        # The pump ends when every process holding the pipe (grandchildren too) has gone.
        return self.proc.returncode is not None and self.pump.done()


class Supervisor:
    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: Path | str,
        out: TextIO | None = None,
        color: bool | None = None,
        width: int = 6,
    ) -> None:
        self.env = dict(env)
        # Python children block-buffer a pipe; lines would arrive in bursts, out of order with the others.
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = str(cwd)
        self.out = out if out is not None else sys.stdout
        if color is None:
            color = self.out.isatty() and not self.env.get("NO_COLOR")
        self.color = color
        self.width = width
        self.out_closed = False
        self.children: dict[str, Child] = {}

    # Output -------------------------------------------------------------

    def prefix(self, name: str, color: str = "") -> str:
        label = f"{name:<{self.width}} |"
        if self.color and color:
            return f"\x1b[{color}m{label}\x1b[0m "
        return label + " "

    def emit(self, name: str, line: str) -> None:
        if self.out_closed:
            return
        child = self.children.get(name)
        try:
            self.out.write(self.prefix(name, child.color if child else "") + line + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            # Our reader went away (`make run | head`); keep draining the children's pipes
            # so they never block on a full one.
            self.out_closed = True

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        # Chunks rather than readline(): a child printing one huge line must not break the pump.
        pending = b""
        while chunk := await stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.emit(name, line.decode(errors="replace").rstrip("\r"))
        if pending:
            self.emit(name, pending.decode(errors="replace").rstrip("\r"))

    # Lifecycle ----------------------------------------------------------

    async def start(self, name: str, argv: Sequence[str]) -> Child:
        if name in self.children:
            raise ValueError(f"{name} is already started")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        child = Child(name, argv, proc, COLORS[len(self.children) % len(COLORS)])
        assert proc.stdout is not None
        child.pump = asyncio.create_task(self._pump(name, proc.stdout), name=f"pump-{name}")
        self.children[name] = child
        return child

    async def first_exit(self) -> tuple[str, int]:
        """Wait until any child exits; its name and exit code (negative: killed by that signal)."""
        if not self.children:
            raise RuntimeError("no children to wait for")
        waits = {asyncio.ensure_future(c.proc.wait()): c for c in self.children.values()}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in waits:
                fut.cancel()
        child = waits[next(iter(done))]
        # Let its last lines out before anyone prints why it stopped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.pump), 1.0)
        assert child.proc.returncode is not None
        return child.name, child.proc.returncode

    def _terminate(self, child: Child) -> None:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()

    def _kill_group(self, child: Child) -> None:
        # The pid is the group id (own session); it stays ours while any group member lives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)

    async def _finished(self, child: Child) -> None:
        await child.proc.wait()
        # Shielded: giving up on this wait must not cancel the pump and lose the last lines.
        await asyncio.shield(child.pump)

    async def stop(self, grace: float = 10.0, hurry: asyncio.Event | None = None) -> dict[str, int | None]:
        """SIGTERM every child, SIGKILL the groups of those not gone after `grace` s (or once `hurry` is set).

        Returns each child's exit code.
        """
        left = [c for c in self.children.values() if not c.finished]
        for child in left:
            self._terminate(child)
        waits = {asyncio.ensure_future(self._finished(c)): c for c in left}
        hurry_wait = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        try:
            pending = set(waits)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while pending and (hurry is None or not hurry.is_set()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                watch = pending | ({hurry_wait} if hurry_wait else set())
                await asyncio.wait(watch, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending = {w for w in pending if not w.done()}
            for wait in pending:
                self._kill_group(waits[wait])
            if pending:
                # SIGKILL cannot be refused; this only waits for the kernel and the pipes to drain.
                await asyncio.wait(pending, timeout=5.0)
        finally:
            if hurry_wait is not None:
                hurry_wait.cancel()
            for wait in waits:
                wait.cancel()
        return {name: c.proc.returncode for name, c in self.children.items()}
