"""`python -m worker [celery worker options]`: the Celery worker, stopped by SIGTERM within a bounded window.

Celery's own SIGTERM is a warm shutdown that waits for running tasks without limit, so a platform that
kills after a grace period cuts them off unacknowledged. With ``REMAP_SIGTERM=SIGQUIT`` SIGTERM starts
the soft shutdown instead: running tasks get ``WORKER_SOFT_SHUTDOWN_TIMEOUT_S`` to finish, and whatever
is still running then is handed back to the broker for another worker (every task is safe to run
again). Billiard reads the variable when it is imported, so it is set here, before Celery loads; an
explicit ``REMAP_SIGTERM=`` (empty) keeps Celery's warm shutdown.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")

from celery.__main__ import main  # after the environment it reads

if __name__ == "__main__":
    sys.argv = ["celery", "-A", "worker.main", "worker", *sys.argv[1:]]
    main()
