"""The environment `make run` gives every process: real variables, then `.env`, then dev defaults.

Pure functions over plain dicts so the precedence rules can be tested without a shell.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

SIM_HOST = "127.0.0.1"

# Order matters: later defaults may refer to earlier ones (PUBLIC_BASE_URL uses PORT).
DEFAULTS: tuple[tuple[str, str], ...] = (
    ("PORT", "8000"),
    ("SIM_PORT", "8765"),
    ("FLOWER_PORT", "5555"),
    ("FLOWER_ADDRESS", "127.0.0.1"),
    # Linked from the console's overview.
    ("FLOWER_URL", "http://127.0.0.1:{FLOWER_PORT}"),
    ("API_KEYS", "sk-local-demo"),
    ("ADMIN_KEY", "admin-local-demo"),
    ("PUBLIC_BASE_URL", "http://127.0.0.1:{PORT}"),
    ("MEDIA_DIR", ".data/media"),
    ("POLL_INTERVAL_S", "1"),
    # The worker's own /metrics (its main process serves every child's counts).
    ("WORKER_METRICS_PORT", "9808"),
    # Ctrl-C should not wait out the production soft-shutdown window (the supervisor's grace is 10 s).
    ("WORKER_SOFT_SHUTDOWN_TIMEOUT_S", "3"),
)


def is_set(env: Mapping[str, str], key: str) -> bool:
    # Settings.from_env ignores empty values, so an empty variable counts as unset here too.
    return bool(env.get(key))


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments; optional `export `; single or double quotes."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            continue
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if value[:1] == "'":
        end = value.find("'", 1)
        if end > 0:
            return value[1:end]
    if value[:1] == '"':
        end = 1
        while end < len(value) and value[end] != '"':
            end += 2 if value[end] == "\\" else 1
        if end < len(value):
            inner = value[1:end]
            # Backslash escapes, as in shell double quotes (plus \n, as other .env readers do).
            return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], inner)
    # An unquoted value ends at a " #" comment; a bare "#" stays (URLs, passwords).
    hash_at = value.find(" #")
    if hash_at >= 0:
        value = value[:hash_at]
    return value.strip()


def load_dotenv(path: Path) -> dict[str, str]:
    try:
        return parse_dotenv(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def merge(dotenv: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Real environment variables win over `.env`, except empty ones (see is_set)."""
    env = dict(dotenv)
    env.update({k: v for k, v in environ.items() if v != "" or k not in env})
    return env


def encryption_key(data_dir: Path) -> str:
    """One random key per checkout, kept so secrets stored by an earlier run stay readable."""
    return _kept(data_dir / "encryption.key", lambda: secrets.token_urlsafe(32))


def flower_basic_auth(data_dir: Path) -> str:
    """Flower's login (user:password), made once per checkout so a browser's saved login keeps working."""
    return _kept(data_dir / "flower.auth", lambda: f"admin:{secrets.token_urlsafe(12)}")


def _kept(path: Path, make: Callable[[], str]) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def with_defaults(env: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    out = dict(env)
    for key, template in DEFAULTS:
        if not is_set(out, key):
            out[key] = template.format(**out)
    if not is_set(out, "ENCRYPTION_KEY"):
        out["ENCRYPTION_KEY"] = encryption_key(data_dir)
    if not is_set(out, "FLOWER_BASIC_AUTH"):
        out["FLOWER_BASIC_AUTH"] = flower_basic_auth(data_dir)
    return out


def uses_simulator(env: Mapping[str, str]) -> bool:
    return not is_set(env, "SORA_BACKEND_URL")


def sim_base_url(env: Mapping[str, str]) -> str:
    return f"http://{SIM_HOST}:{env['SIM_PORT']}"


def with_upstream(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Point every upstream host at the simulator unless a real backend is configured.

    Returns the new environment and the line that says which upstream is used.
    """
    out = dict(env)
    if not uses_simulator(out):
        return out, f"Upstream: {out['SORA_BACKEND_URL']} (SORA_BACKEND_URL)"
    base = sim_base_url(out)
    # All four together: a half-real, half-simulated upstream would only produce confusing errors.
    out["SORA_BACKEND_URL"] = f"{base}/backend"
    out["SORA_WEB_URL"] = base
    out["OPENAI_AUTH_URL"] = base
    out["SENTINEL_PROVIDER"] = f"{base}/sentinel"
    if not is_set(out, "SIM_TIME_SCALE"):
        out["SIM_TIME_SCALE"] = "0.1"
    return out, f"Upstream: bundled Sora simulator on {base} (no SORA_BACKEND_URL set)"


@dataclass
class DevEnv:
    env: dict[str, str]
    simulator: bool
    upstream: str


def build(root: Path, environ: Mapping[str, str]) -> DevEnv:
    """The whole environment for `make run`, whether it uses the simulator, and its upstream line."""
    env = with_defaults(merge(load_dotenv(root / ".env"), environ), root / ".data")
    simulator = uses_simulator(env)
    env, upstream = with_upstream(env)
    return DevEnv(env=env, simulator=simulator, upstream=upstream)
