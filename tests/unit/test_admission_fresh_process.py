"""A fresh API process whose first request is a create: the planned job (built without SQLAlchemy's instance
state) must read back, which needs the mappers configured before any query has configured them."""

from __future__ import annotations

import subprocess
import sys

from tests.infra import ROOT

SCRIPT = """
from shared.queue import create_celery
from shared.resources import Resources
from shared.settings import Settings
from shared.models import Job
from shared.jobs import new_job_times

settings = Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none", redis_url="redis://127.0.0.1:9/0",
                    encryption_key="0" * 32)
Resources.build(settings, create_celery(settings), db_pool_size=1)
job = Job.model_construct(id="video_fresh", kind="video", owner="o", model="sora-2", prompt="p", seconds=10,
                          size="720x1280", params={}, **new_job_times(60))
print(job.id, job.state, job.params)
"""


def test_a_planned_job_reads_back_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["video_fresh", "queued", "{}"]
