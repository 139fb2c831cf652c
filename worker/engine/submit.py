"""videos.submit: lease a slot, create the upstream task, store its id. Short; never waits on the upstream."""

from __future__ import annotations

from typing import Any

from shared import logs
from shared.accounts import quota_fields
from shared.errors import GatewayError
from shared.inputs import InputImage, fetch_image
from shared.models import Account, Job, JobState
from shared.secrets import SecretUnreadable
from shared.sora import errors
from shared.sora.client import Credentials
from shared.sora.sentinel import SentinelUnavailable
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine import attempts, characters
from worker.engine.common import fail, heartbeat, log, publish, step_silence


def create_payload(job: Job) -> dict[str, Any]:
    params = job.params
    return {
        "kind": "video",
        "prompt": params["upstream_prompt"],
        "orientation": params["orientation"],
        "size": params["upstream_size"],
        "n_frames": params["n_frames"],
        "model": params["upstream_model"],
        "inpaint_items": [],
        "style_id": params.get("style_id"),
        # Sent as null by the web page; some backends reject bodies without them.
        "remix_target_id": None,
        "title": None,
        "project_id": None,
        "metadata": None,
        "cameo_ids": None,
        "cameo_replacements": None,
        "audio_caption": None,
        "audio_transcript": None,
        "video_caption": None,
        "storyboard_id": None,
    }


async def _send(ctx: Context, creds: Credentials, job: Job) -> dict[str, Any]:
    """The upstream create call for this job's operation."""
    params = job.params
    if job.kind == "image":
        return await ctx.sora.create_image(creds, await _image_payload(ctx, creds, job))
    if params.get("operation") == "extension":
        body = {
            "user_prompt": params["upstream_prompt"],
            "extension_duration_s": params["extension_duration_s"],
            "enable_rewrite": True,
        }
        return await ctx.sora.extend(creds, params["generation_id"], body)
    payload = create_payload(job)
    if params.get("input_image"):
        payload["inpaint_items"] = [{"kind": "upload", "upload_id": await _upload_reference(ctx, creds, job)}]
    if params.get("operation") == "remix":
        payload.update(remix_target_id=await _remix_target(ctx, job), cameo_ids=[], cameo_replacements={})
        payload.pop("size", None)
    if params.get("operation") == "storyboard":
        payload["title"] = "Draft your video"
        return await ctx.sora.create_storyboard(creds, payload)
    return await ctx.sora.create_video(creds, payload)


async def _image_payload(ctx: Context, creds: Credentials, job: Job) -> dict[str, Any]:
    params = job.params
    items: list[dict[str, Any]] = []
    if params.get("input_image"):
        media_id = await _upload_reference(ctx, creds, job)
        items = [{"type": "image", "frame_index": 0, "upload_media_id": media_id}]
    return {
        "type": "image_gen",
        "operation": "remix" if items else "simple_compose",
        "prompt": params["upstream_prompt"],
        "width": params["width"],
        "height": params["height"],
        "n_variants": 1,
        "n_frames": 1,
        "inpaint_items": items,
    }


async def _upload_reference(ctx: Context, creds: Credentials, job: Job) -> str:
    source = job.params["input_image"]
    if "key" in source:
        image = InputImage(data=await ctx.storage.read(source["key"]), content_type=source["content_type"])
    else:
        try:
            image = await fetch_image(source["url"], param=source.get("param", "input_reference"))
        except GatewayError as exc:
            raise attempts.InputUnavailable(
                exc.code or "fetch_failed", f"The reference image could not be used: {exc}"
            ) from exc
    return await ctx.sora.upload_image(creds, image.data, image.content_type, image.extension)


async def _remix_target(ctx: Context, job: Job) -> str:
    """An upstream post id; our own finished video is published once to get one (remixes need a post)."""
    if job.params.get("remix_target_id"):
        return job.params["remix_target_id"]
    source = await ctx.jobs.get(job.params["remix_source_job"])
    if source is None or not source.generation_id or source.account_id is None:
        raise attempts.InputUnavailable(
            "remix_source_unavailable", "The video to remix is no longer available"
        )
    if source.post_id:
        return source.post_id
    account = await ctx.pool.get(source.account_id)
    if account is None:
        raise attempts.InputUnavailable(
            "remix_source_unavailable", "The account that made the source video is gone"
        )
    post_id = await ctx.sora.publish(ctx.pool.credentials(account), source.generation_id)
    await ctx.jobs.set_post_id(source.id, post_id)
    return post_id


async def submit(ctx: Context, job_id: str) -> None:
    job = await ctx.jobs.get(job_id)
    if job is None or job.state not in (JobState.QUEUED, JobState.SUBMITTING):
        return  # already past this step: a redelivered message has nothing to do
    logs.bind_job(job)
    if job.kind == "character" or job.params.get("after_job"):
        job = await characters.gate(ctx, job)  # None while the job it waits for runs
        if job is None:
            return
        if job.kind == "character":
            await characters.submit(ctx, job)
            return
    if job.state == JobState.SUBMITTING:
        job = await _resume(ctx, job)
        if job is None:
            return

    requires_pro = bool(job.params.get("requires_pro"))
    sticky = job.params.get("sticky_account_id")
    avoid = set() if sticky else attempts.avoided_account(job)
    account = None
    preferred = None if sticky else attempts.preferred_account(job)
    if preferred is not None:
        # A refreshed token is tried again, and a create whose answer was lost is looked for, on the same
        # account; when it cannot take the job now, the ordinary choice below applies.
        account = await ctx.pool.lease(job.kind, job.id, requires_pro=requires_pro, only=preferred)
    if account is None:
        account = await ctx.pool.lease(
            job.kind, job.id, requires_pro=requires_pro, exclude=avoid, only=sticky
        )
    if (
        account is None
        and avoid
        and not await ctx.pool.any_eligible(job.kind, requires_pro=requires_pro, exclude=avoid)
    ):
        # The account that just failed is the only one that could ever take the job: better it than none.
        account = await ctx.pool.lease(job.kind, job.id, requires_pro=requires_pro)
    if account is None:
        await ctx.jobs.park(job.id)
        return
    claimed = await ctx.jobs.transition(
        job.id,
        [JobState.QUEUED],
        bump=False,
        durable=True,  # a claim lost after the create would let the job be created again
        state=JobState.SUBMITTING,
        account_id=account.id,
        submit_started_at=utcnow(),
    )
    if claimed is None:
        await ctx.pool.leases.release(account.id, job.kind, job.id)  # type: ignore[arg-type]
        return
    logs.bind_account(account.id)
    # From here a dead worker leaves the job in SUBMITTING; the heartbeat tells a slow create from that.
    async with heartbeat(ctx, claimed, "submit_started_at"):
        await _create(ctx, claimed, account)


async def _create(ctx: Context, job: Job, account: Account) -> None:
    try:
        creds = ctx.pool.credentials(account)
    except SecretUnreadable as exc:
        log.error("account %s: %s; disabling it", account.id, exc)
        await ctx.pool.update(account.id, enabled=False, disabled_reason="secret_unreadable")  # type: ignore[arg-type]
        await attempts.retry_or_fail(
            ctx, job, account, "secret_unreadable", "No usable account", avoid=True, delay=0.0
        )
        return
    if attempts.reconcile_account(job) == account.id:
        # The last create here may have happened although its answer was lost: look before sending again.
        try:
            task_id = await _find_unclaimed_task(ctx, creds, job)
        except errors.UpstreamError as exc:
            # Not knowing is not "no task": this attempt ends here, and the next one looks again.
            await attempts.on_upstream_error(ctx, job, account, exc, reconcile=True)
            return
        if task_id is not None:
            await _mark_submitted(ctx, job, account, task_id, {})
            return
    try:
        answer = await _send(ctx, creds, job)
    except attempts.InputUnavailable as exc:
        await fail(ctx, job, exc.code, exc.message)
        return
    except SentinelUnavailable as exc:
        # The operator's provider is down: never the account's fault, so it is left as it was.
        log.warning("job %s: %s", job.id, exc)
        await attempts.retry_or_fail(
            ctx,
            job,
            account,
            "sentinel_unavailable",
            "The request signing service is unavailable; please retry later.",
            avoid=False,
        )
        return
    except errors.UpstreamError as exc:
        if exc.maybe_processed:
            # The create may have happened even though the answer was lost: look before sending another.
            try:
                task_id = await _find_unclaimed_task(ctx, creds, job)
            except errors.UpstreamError:
                task_id = None
            if task_id is not None:
                await _mark_submitted(ctx, job, account, task_id, {})
                return
        await attempts.on_upstream_error(ctx, job, account, exc)
        return
    await _mark_submitted(ctx, job, account, answer["id"], answer)


async def _mark_submitted(ctx: Context, job: Job, account: Account, task_id: str, answer: dict) -> None:
    running = await ctx.jobs.transition(
        job.id,
        [JobState.SUBMITTING],
        state=JobState.RUNNING,
        upstream_task_id=task_id,
        upstream_status="submitted",
        submitted_at=utcnow(),
        progress=1,
    )
    if running is None:
        # Failed or cancelled meanwhile (deadline): the slot is no longer ours to keep. Unless the job holds
        # it still, because a resume adopted this very task, or took the same account again.
        current = await ctx.jobs.get(job.id)
        if current is None or current.account_id != account.id or current.state not in JobState.ACTIVE:
            await ctx.pool.leases.release(account.id, job.kind, job.id)  # type: ignore[arg-type]
        return
    log.info("job %s submitted as %s on account %s", job.id, task_id, account.id)
    quota = quota_fields(answer)
    if quota:
        await ctx.pool.update(account.id, **quota)  # type: ignore[arg-type]
    await publish(ctx, running, "Video generation started")


async def _find_unclaimed_task(
    ctx: Context, creds: Credentials, job: Job, *, finished_too: bool = False
) -> str | None:
    """A task of this account with our prompt that no job owns yet: the answer we never got.

    Videos are looked for in the pending list, and with ``finished_too`` (a resume, which may come
    long after the create) among the drafts made since the job was; images in the recent tasks.
    Raises the upstream's error when it cannot be asked: not knowing is not "no task".
    """
    prompt = job.params["upstream_prompt"]
    if job.kind == "image":
        listed = await ctx.sora.recent_image_tasks(creds, limit=50)
    else:
        listed = await ctx.sora.pending(creds)
        if finished_too:
            since = job.created_at.timestamp() - 60
            drafts = (await ctx.sora.drafts(creds)).get("items") or []
            listed += [
                {"id": d.get("task_id"), "prompt": d.get("prompt")}
                for d in drafts
                if isinstance(d, dict)
                and isinstance(d.get("created_at"), int | float)
                and d["created_at"] >= since
            ]
    candidates = [t["id"] for t in listed if t.get("prompt") == prompt and isinstance(t.get("id"), str)]
    known = await ctx.jobs.task_ids_known(candidates)
    fresh = [task_id for task_id in candidates if task_id not in known]
    return fresh[0] if fresh else None


async def _resume(ctx: Context, job: Job) -> Job | None:
    """A submit whose worker died between taking a slot and storing the task id (its heartbeat stopped)."""
    started = job.submit_started_at or job.updated_at
    if utcnow() - started < step_silence(ctx.settings):
        return None  # its submit is still alive, inside a create call that is only slow
    account = await ctx.pool.get(job.account_id) if job.account_id is not None else None
    if account is not None:
        try:
            task_id = await _find_unclaimed_task(ctx, ctx.pool.credentials(account), job, finished_too=True)
        except SecretUnreadable:
            task_id = None
        except errors.UpstreamError as exc:
            # Creating again now could pay twice: the sweeper asks again later (the deadline bounds it).
            log.warning("job %s: cannot look for its task yet (%s)", job.id, exc.error_class)
            return None
        if task_id is not None:
            # Its lease may have run out while the worker was gone: the job holds the slot from here on.
            await ctx.pool.leases.renew(account.id, job.kind, [job.id])  # type: ignore[arg-type]
            await _mark_submitted(ctx, job, account, task_id, {})
            return None
        await ctx.pool.leases.release(account.id, job.kind, job.id)  # type: ignore[arg-type]
    return await ctx.jobs.transition(
        job.id, [JobState.SUBMITTING], bump=False, state=JobState.QUEUED, account_id=None
    )
