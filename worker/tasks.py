"""Celery tasks: thin wrappers that run the engine's plain async functions.

Each task takes an id, re-reads its row, and is safe to run twice.
"""

from __future__ import annotations

from celery import Celery, Task

from shared import logs, names
from worker.context import Runtime
from worker.engine import accounts, finalize, media, poll, submit, sweep


def register(app: Celery, runtime: Runtime) -> None:
    @app.task(name=names.TASK_VIDEO_SUBMIT, ignore_result=True)
    def video_submit(job_id: str) -> None:
        with logs.bind(job_id=job_id):
            runtime.run(submit.submit, job_id)

    @app.task(name=names.TASK_VIDEO_FINALIZE, bind=True, ignore_result=True, max_retries=None)
    def video_finalize(self: Task, job_id: str) -> None:
        try:
            with logs.bind(job_id=job_id):
                runtime.run(finalize.finalize, job_id, self.request.retries)
        except finalize.RetryLater as later:
            raise self.retry(countdown=later.delay) from None

    @app.task(name=names.TASK_POLL_TICK, ignore_result=True)
    def poll_tick() -> int:
        return runtime.run(poll.tick)

    @app.task(name=names.TASK_POLL_ACCOUNTS, ignore_result=True)
    def poll_accounts(account_ids: list[int]) -> None:
        runtime.run(poll.poll_accounts, account_ids)

    @app.task(name=names.TASK_POLL_DRAFTS, ignore_result=True)
    def poll_drafts(account_ids: list[int] | int, left: int) -> None:
        runtime.run(poll.recheck_drafts, account_ids, left)

    @app.task(name=names.TASK_POLL_ACCOUNT, ignore_result=True)
    def poll_account(account_id: int) -> None:
        with logs.bind(account_id=account_id):
            runtime.run(poll.poll_account, account_id)

    @app.task(name=names.TASK_DISPATCH, ignore_result=True)
    def dispatch() -> int:
        return runtime.run(sweep.dispatch_parked)

    @app.task(name=names.TASK_ACCOUNTS_MAINTAIN, ignore_result=True)
    def accounts_maintain() -> dict[str, int]:
        return runtime.run(accounts.maintain)

    @app.task(name=names.TASK_ACCOUNT_REFRESH, ignore_result=True)
    def account_refresh(account_id: int) -> bool:
        with logs.bind(account_id=account_id):
            return runtime.run(accounts.refresh_one, account_id)

    @app.task(name=names.TASK_MEDIA_EXPIRE, ignore_result=True)
    def media_expire() -> dict[str, int]:
        return runtime.run(media.expire)

    @app.task(name=names.TASK_SWEEP, ignore_result=True)
    def jobs_sweep() -> dict[str, int]:
        return runtime.run(sweep.sweep)
