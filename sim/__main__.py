"""``python -m sim``: serve the simulator with uvicorn on ``SIM_HOST``:``SIM_PORT``."""

from __future__ import annotations

import uvicorn

from sim.app import create_app
from sim.config import SimConfig


def main() -> None:
    config = SimConfig.from_env()
    print(
        f"sora-sim listening on http://{config.host}:{config.port} "
        f"(backend {config.backend_prefix}, media {config.public_url}/media, clock {config.clock}, "
        f"time scale {config.time_scale})",
        flush=True,
    )
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
