"""``python -m api``: serve the API on $HOST:$PORT."""

from __future__ import annotations

import uvicorn

from shared import logs
from shared.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    # Ours, before uvicorn starts: with log_config=None its loggers go through our root handler.
    logs.configure(settings.log_level, settings.log_format)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
