"""Simulator settings, parsed from ``SIM_*`` environment variables.

Phase durations are given at scale 1 (the timings observed upstream) and multiplied by ``time_scale``
when used; token lifetimes and fault delays are literal seconds and are never scaled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

CLOCK_MODES = ("real", "manual")


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _prefix(value: str) -> str:
    return "/" + value.strip().strip("/")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    time_scale: float = 1.0
    clock: str = "real"
    backend_prefix: str = "/backend"
    # Base of the absolute media URLs; empty means http://127.0.0.1:{port}.
    public_url: str = ""
    strict_sentinel: bool = False
    max_concurrent: int = 3
    preprocessing_s: float = 1.0
    queued_s: float = 45.0
    running_s: float = 60.0
    processing_s: float = 5.0
    draft_gap_s: float = 2.0
    image_queued_s: float = 2.0
    image_running_s: float = 8.0
    # How long a failed task stays listed in pending before it vanishes.
    failed_linger_s: float = 60.0
    # How long a cameo is ``processing`` before it completes (or fails, when a fault says so).
    cameo_s: float = 10.0
    # Length of the quota window; quota refills when it rolls over.
    quota_reset_s: float = 86400.0
    log_limit: int = 50_000

    def __post_init__(self) -> None:
        if self.clock not in CLOCK_MODES:
            raise ValueError(f"SIM_CLOCK must be one of {CLOCK_MODES}, got {self.clock!r}")
        if self.time_scale < 0:
            raise ValueError("SIM_TIME_SCALE must not be negative")
        object.__setattr__(self, "backend_prefix", _prefix(self.backend_prefix))
        base = self.public_url or f"http://127.0.0.1:{self.port}"
        object.__setattr__(self, "public_url", base.rstrip("/"))

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SimConfig:
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        text = {
            "SIM_HOST": "host",
            "SIM_CLOCK": "clock",
            "SIM_BACKEND_PREFIX": "backend_prefix",
            "SIM_PUBLIC_URL": "public_url",
        }
        ints = {"SIM_PORT": "port", "SIM_MAX_CONCURRENT": "max_concurrent", "SIM_LOG_LIMIT": "log_limit"}
        floats = {
            "SIM_TIME_SCALE": "time_scale",
            "SIM_PREPROCESSING_S": "preprocessing_s",
            "SIM_QUEUED_S": "queued_s",
            "SIM_RUNNING_S": "running_s",
            "SIM_PROCESSING_S": "processing_s",
            "SIM_DRAFT_GAP_S": "draft_gap_s",
            "SIM_IMAGE_QUEUED_S": "image_queued_s",
            "SIM_IMAGE_RUNNING_S": "image_running_s",
            "SIM_FAILED_LINGER_S": "failed_linger_s",
            "SIM_CAMEO_S": "cameo_s",
            "SIM_QUOTA_RESET_S": "quota_reset_s",
        }
        for var, field in text.items():
            # An empty prefix is meaningful (backend at the root); other empty values mean "default".
            if var in env and (env[var].strip() or var == "SIM_BACKEND_PREFIX"):
                kwargs[field] = env[var].strip()
        for var, field in ints.items():
            if env.get(var, "").strip():
                kwargs[field] = int(env[var])
        for var, field in floats.items():
            if env.get(var, "").strip():
                kwargs[field] = float(env[var])
        if "SIM_STRICT_SENTINEL" in env:
            kwargs["strict_sentinel"] = _bool(env["SIM_STRICT_SENTINEL"])
        return cls(**kwargs)  # type: ignore[arg-type]
