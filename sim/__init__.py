"""A stand-in for the Sora web backend, session and OAuth endpoints, and media host, for tests and dev.

Run it with ``python -m sim``; see ``sim.config.SimConfig`` for the ``SIM_*`` settings and ``sim.control``
for the ``/_sim`` control API.
"""

from sim.app import create_app
from sim.config import SimConfig

__all__ = ["SimConfig", "create_app"]
