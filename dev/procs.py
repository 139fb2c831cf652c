"""The command line of every process the product runs, in one place.

`make api`, `make worker` … run `python -m dev.procs NAME`, the `make run`
supervisor starts the same commands, and so do the end-to-end tests.
Everything else comes from environment variables (see .env.example).
"""

from __future__ import annotations

import os
import sys

PY = sys.executable

PROCESSES: dict[str, list[str]] = {
    "sim": [PY, "-m", "sim"],
    "api": [PY, "-m", "api"],
    "worker": [PY, "-m", "worker", "--loglevel=INFO"],
    "beat": [PY, "-m", "celery", "-A", "worker.main", "beat", "--loglevel=INFO"],
    "flower": [PY, "-m", "celery", "-A", "worker.main", "flower"],
    "migrate": [PY, "-m", "alembic", "upgrade", "head"],
}


def command(name: str) -> list[str]:
    try:
        return list(PROCESSES[name])
    except KeyError:
        raise SystemExit(f"unknown process {name!r}; one of: {', '.join(PROCESSES)}") from None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m dev.procs {{{'|'.join(PROCESSES)}}}")
    argv = command(sys.argv[1])
    os.execv(argv[0], argv)
