"""``python -m api``: serve the API on $HOST:$PORT."""

from __future__ import annotations

import uvicorn

from shared.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        access_log=False,
    )


if __name__ == "__main__":
    main()
