from __future__ import annotations

import logging


def quiet_libraries() -> None:
    """httpx logs every request line at INFO, signed media query strings included: keep that out of logs."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
