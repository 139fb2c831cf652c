"""Character (cameo) jobs, and jobs that wait for another one (chains of a character and a video).

A character job is short steps like a video: submit leases a ``character`` slot and
starts the cameo (an upload, or from one of the account's drafts) and stores the
cameo id as ``upstream_task_id``; the account's poll tick reads each running
cameo with one request; finalize uploads the avatar, picks the username,
finalizes, makes the cameo public and stores the ``characters`` row. Each step
keeps its result in the job's params before the next one runs, so a redelivered
message picks up where the last one stopped.

Chains: a job with ``params.after_job`` stays queued until that job completes (and
fails if it fails). A video that needs a character first waits for it and then
runs on the character's account with ``@username`` in front of its prompt; a
character made from a video (``character_create``) waits for the video and then
starts from its draft on the video's account. The finished job wakes the waiting
one (``params.then_job``); the sweeper re-sends waiting jobs meanwhile.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import logs
from shared.characters import (
    USERNAME_TRIES,
    CharacterRepo,
    derive_username,
    instruction_value,
    mention_prompt,
    timestamps_list,
    timestamps_text,
)
from shared.errors import GatewayError
from shared.inputs import InputVideo, fetch_video, sniff_image_type
from shared.models import Account, Character, Job, JobState
from shared.secrets import SecretUnreadable
from shared.sora import errors
from shared.sora.client import Credentials, MediaNotAllowed
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine import accounts
from worker.engine.attempts import InputUnavailable, avoided_account, on_upstream_error, retry_or_fail
from worker.engine.common import (
    RetryLater,
    fail,
    free_slot,
    heartbeat,
    log,
    publish,
    step_silence,
    wake_dependent,
)

KIND = "character"
CONTENT_FILTER_MESSAGE = "The prompt or input was rejected by the content filter"
MAX_FINALIZE_ATTEMPTS = 5
MAX_AVATAR_BYTES = 16 * 1024 * 1024
_AVATAR_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


# Chains ------------------------------------------------------------------------------------


def _chain_values(job: Job, before: Job) -> dict[str, Any] | None:
    """What a waiting job takes from the finished job it waited for (None: nothing usable)."""
    if job.kind == KIND:
        # Made from the video's draft, on the account the draft belongs to.
        if not before.generation_id or before.account_id is None:
            return None
        return {"generation_id": before.generation_id, "sticky_account_id": before.account_id}
    username = before.params.get("username_chosen")
    if not username or before.account_id is None:
        return None
    # The video mentions the character on the account that owns it.
    return {
        "upstream_prompt": mention_prompt(username, job.params.get("upstream_prompt", "")),
        "sticky_account_id": before.account_id,
        "character_username": username,
    }


async def gate(ctx: Context, job: Job) -> Job | None:
    """The job, ready to submit; or None while the job it waits for runs (or when that one failed)."""
    after = job.params.get("after_job")
    if not after or job.params.get("chain_applied") or job.state != JobState.QUEUED:
        return job
    before = await ctx.jobs.get(after)
    if before is not None and before.state not in JobState.TERMINAL:
        return None  # woken when it ends; the sweeper re-sends this job meanwhile
    values = _chain_values(job, before) if before is not None and before.state == JobState.COMPLETED else None
    if values is None:
        what = "video" if job.kind == KIND else "character"
        reason = (before.error_message if before is not None else None) or "it is no longer available"
        await fail(ctx, job, f"{what}_failed", f"The {what} this job waited for failed: {reason}")
        return None
    applied = await ctx.jobs.merge_params(
        job.id,
        [JobState.QUEUED],
        {**values, "chain_applied": True},
        unless_key="chain_applied",
        # The deadline counts from now: the waiting was the other job's time.
        deadline_at=utcnow() + timedelta(seconds=ctx.settings.job_deadline_s),
    )
    return applied or await ctx.jobs.get(job.id)


# Submit ------------------------------------------------------------------------------------


async def submit(ctx: Context, job: Job) -> None:
    if job.state == JobState.SUBMITTING:
        resumed = await _resume(ctx, job)
        if resumed is None:
            return
        job = resumed
    params = job.params
    requires_pro = bool(params.get("requires_pro"))
    sticky = params.get("sticky_account_id")
    avoid = set() if sticky else avoided_account(job)
    account = await ctx.pool.lease(KIND, job.id, requires_pro=requires_pro, exclude=avoid, only=sticky)
    if (
        account is None
        and avoid
        and not await ctx.pool.any_eligible(KIND, requires_pro=requires_pro, exclude=avoid)
    ):
        account = await ctx.pool.lease(KIND, job.id, requires_pro=requires_pro)
    if account is None:
        await ctx.jobs.park(job.id)
        return
    assert account.id is not None
    claimed = await ctx.jobs.transition(
        job.id,
        [JobState.QUEUED],
        bump=False,
        durable=True,  # a claim lost after the cameo was started would let it be started again
        state=JobState.SUBMITTING,
        account_id=account.id,
        submit_started_at=utcnow(),
    )
    if claimed is None:
        await ctx.pool.leases.release(account.id, KIND, job.id)
        return
    async with heartbeat(ctx, claimed, "submit_started_at"):
        await _start(ctx, claimed, account)


async def _start(ctx: Context, job: Job, account: Account) -> None:
    assert account.id is not None
    try:
        creds = ctx.pool.credentials(account)
    except SecretUnreadable as exc:
        log.error("account %s: %s; disabling it", account.id, exc)
        await ctx.pool.update(account.id, enabled=False, disabled_reason="secret_unreadable")
        await retry_or_fail(
            ctx, job, account, "secret_unreadable", "No usable account", avoid=True, delay=0.0
        )
        return
    try:
        cameo_id = await _start_cameo(ctx, creds, job)
    except InputUnavailable as exc:
        await fail(ctx, job, exc.code, exc.message)
        return
    except errors.UpstreamError as exc:
        await on_upstream_error(ctx, job, account, exc)
        return
    running = await ctx.jobs.transition(
        job.id,
        [JobState.SUBMITTING],
        durable=True,  # a resume cannot find a started cameo again: lost, it would be started twice
        state=JobState.RUNNING,
        upstream_task_id=cameo_id,
        upstream_status="processing",
        submitted_at=utcnow(),
        progress=1,
    )
    if running is None:
        await ctx.pool.leases.release(account.id, KIND, job.id)
        return
    log.info("character %s started as cameo %s on account %s", job.id, cameo_id, account.id)
    await publish(ctx, running, "Character creation started")


async def _start_cameo(ctx: Context, creds: Credentials, job: Job) -> str:
    params = job.params
    span = params.get("timestamps") or [0, 3]
    if params.get("generation_id"):
        return await ctx.sora.character_from_generation(creds, params["generation_id"], timestamps_list(span))
    video = await _source_video(ctx, job)
    return await ctx.sora.upload_character_video(creds, video.data, timestamps_text(span))


async def _source_video(ctx: Context, job: Job) -> InputVideo:
    source = job.params.get("input_video") or {}
    if "key" in source:
        return InputVideo(data=await ctx.storage.read(source["key"]))
    if "url" not in source:
        raise InputUnavailable("missing_input", "The character has no source video")
    try:
        return await fetch_video(
            source["url"],
            param=source.get("param", "url"),
            max_bytes=ctx.settings.character_video_max_bytes,
        )
    except GatewayError as exc:
        raise InputUnavailable(
            exc.code or "fetch_failed", f"The character video could not be used: {exc}"
        ) from exc


async def _resume(ctx: Context, job: Job) -> Job | None:
    """A submit whose worker died between taking a slot and storing the cameo id (its heartbeat stopped):
    start over (an upload that did reach the upstream leaves an unfinished cameo there, which nothing can
    find again)."""
    started = job.submit_started_at or job.updated_at
    if utcnow() - started < step_silence(ctx.settings):
        return None  # its submit is still alive, inside an upload that is only slow
    if job.account_id is not None:
        await ctx.pool.leases.release(job.account_id, KIND, job.id)
    return await ctx.jobs.transition(
        job.id, [JobState.SUBMITTING], bump=False, state=JobState.QUEUED, account_id=None
    )


# Poll --------------------------------------------------------------------------------------


def cameo_outcome(cameo: dict[str, Any]) -> str:
    """``done``, ``failed`` or ``processing`` for a ``cameos/in_progress`` answer (upstream section 5.4)."""
    status = str(cameo.get("status") or "").lower()
    message = str(cameo.get("status_message") or "").lower()
    if status in ("failed", "error"):
        return "failed"
    if message == "completed" or status in ("finalized", "completed", "succeeded"):
        return "done"
    return "processing"


def _percent(job: Job, cameo: dict[str, Any]) -> int:
    pct = cameo.get("progress_pct")
    if isinstance(pct, int | float) and not isinstance(pct, bool):
        return min(max(int(float(pct) * 100), 1), 90)
    # The upstream gives no figure: show that something happens, without claiming to be nearly done.
    return min(job.progress + 5, 90)


async def poll_cameos(ctx: Context, creds: Credentials, jobs: list[Job]) -> None:
    """One request per running cameo of the account."""
    for job in jobs:
        if not job.upstream_task_id:
            continue
        try:
            cameo = await ctx.sora.cameo_status(creds, job.upstream_task_id)
        except errors.UpstreamError as exc:
            # The next tick tries again; the deadline bounds how long that can go on.
            log.warning("cameo poll for %s failed: %s", job.id, exc.error_class)
            if exc.refresh_first:  # the token was refused: the account's other cameos would be too
                await accounts.on_poll_error(ctx, creds.account_id, exc)
                return
            continue
        await _on_cameo(ctx, job, cameo)


@logs.for_job
async def _on_cameo(ctx: Context, job: Job, cameo: dict[str, Any]) -> None:
    outcome = cameo_outcome(cameo)
    if outcome == "failed":
        reason = str(cameo.get("status_message") or cameo.get("failure_reason") or "no reason given")
        if "polic" in reason.lower() or "guideline" in reason.lower():
            await fail(ctx, job, "content_filter", CONTENT_FILTER_MESSAGE)
        else:
            await fail(ctx, job, "character_failed", f"The upstream could not create the character: {reason}")
        return
    if outcome == "processing":
        status = str(cameo.get("status") or "processing")
        await publish(ctx, await ctx.jobs.raise_progress(job.id, _percent(job, cameo), status))
        return
    hints = {
        key: cameo.get(key)
        for key in ("username_hint", "display_name_hint", "profile_asset_url", "instruction_set_hint")
    }
    hints["instruction_set_hint"] = hints["instruction_set_hint"] or cameo.get("instruction_set")
    finalizing = await ctx.jobs.merge_params(
        job.id,
        [JobState.RUNNING],
        {"cameo": hints},
        bump=True,
        state=JobState.FINALIZING,
        upstream_status=str(cameo.get("status") or "completed"),
        progress=95,
    )
    if finalizing is not None:
        ctx.enqueue.finalize(job.id)
        await publish(ctx, finalizing, "Finalizing the character")


# Finalize ----------------------------------------------------------------------------------


class _Gone(Exception):
    """The job left FINALIZING meanwhile (its deadline passed): nothing more to do."""


class _NoUsername(Exception):
    pass


async def finalize(ctx: Context, job: Job, attempt: int = 0) -> None:
    if job.state != JobState.FINALIZING:
        return
    account = await ctx.pool.get(job.account_id) if job.account_id is not None else None
    if account is None or account.id is None:
        await fail(ctx, job, "character_failed", "The account that made the cameo is gone")
        return
    try:
        creds = ctx.pool.credentials(account)
    except SecretUnreadable:
        await fail(ctx, job, "secret_unreadable", "The account that made the cameo cannot be used")
        return
    await ctx.pool.leases.renew(account.id, KIND, [job.id])
    repo = CharacterRepo(ctx.sessions)
    try:
        if await repo.by_job(job.id) is None:
            job = await _finish_upstream(ctx, creds, job)
            await repo.add(
                Character(
                    id=job.id,
                    owner=job.owner,
                    job_id=job.id,
                    account_id=account.id,
                    cameo_id=job.upstream_task_id or "",
                    character_id=job.params["character_id"],
                    username=job.params["username_chosen"],
                    display_name=job.params.get("display_name_final"),
                )
            )
    except _Gone:
        return
    except _NoUsername:
        await fail(ctx, job, "username_unavailable", "No free username could be found for the character")
        return
    except MediaNotAllowed as exc:
        await fail(ctx, job, "media_host_not_allowed", str(exc))
        return
    except errors.UpstreamError as exc:
        if attempt + 1 >= MAX_FINALIZE_ATTEMPTS or exc.reaction is errors.Reaction.FAIL:
            await fail(
                ctx, job, "character_failed", f"The character could not be finalized: {exc.public_message}"
            )
            return
        log.warning("character %s: finalize step failed (%s), retrying", job.id, exc.error_class)
        raise RetryLater(min(2**attempt * 2, 60)) from exc

    now = utcnow()
    completed = await ctx.jobs.transition(
        job.id, [JobState.FINALIZING], state=JobState.COMPLETED, progress=100, completed_at=now
    )
    if completed is None:
        return
    log.info("character %s completed as @%s", job.id, completed.params.get("username_chosen"))
    await publish(ctx, completed, "Character ready")
    await free_slot(ctx, completed)
    wake_dependent(ctx, completed)
    if completed.account_id is not None:
        await ctx.pool.record_success(completed.account_id, "character")


async def _keep(ctx: Context, job: Job, values: dict[str, Any]) -> Job:
    """Stores a step's result before the next step runs."""
    kept = await ctx.jobs.merge_params(job.id, [JobState.FINALIZING], values, durable=True)
    if kept is None:
        raise _Gone
    return kept


async def _finish_upstream(ctx: Context, creds: Credentials, job: Job) -> Job:
    """Avatar, username, finalize, visibility: each done once, its result kept in the params."""
    cameo = job.params.get("cameo") or {}
    if "asset_pointer" not in job.params:
        job = await _keep(ctx, job, {"asset_pointer": await _avatar_pointer(ctx, creds, cameo)})
    if "username_chosen" not in job.params:
        username = await _choose_username(
            ctx, creds, job.params.get("username"), cameo.get("username_hint") or job.params.get("username")
        )
        job = await _keep(ctx, job, {"username_chosen": username})
    if "character_id" not in job.params:
        params = job.params
        display_name = (
            params.get("display_name") or cameo.get("display_name_hint") or params["username_chosen"]
        )
        payload = {
            "cameo_id": job.upstream_task_id,
            "username": params["username_chosen"],
            "display_name": display_name,
            "profile_asset_pointer": params.get("asset_pointer"),
            "instruction_set": instruction_value(params.get("instruction_set")),
            "safety_instruction_set": instruction_value(params.get("safety_instruction_set")),
        }
        try:
            character_id = await ctx.sora.finalize_character(creds, payload)
        except errors.UpstreamError:
            # An earlier delivery may have finalized it and died before keeping the answer.
            character_id = await _already_finalized(ctx, creds, job)
            if character_id is None:
                raise
        job = await _keep(ctx, job, {"character_id": character_id, "display_name_final": display_name})
    if not job.params.get("public"):
        await ctx.sora.set_cameo_public(creds, job.upstream_task_id or "")
        job = await _keep(ctx, job, {"public": True})
    return job


async def _already_finalized(ctx: Context, creds: Credentials, job: Job) -> str | None:
    try:
        cameo = await ctx.sora.cameo_status(creds, job.upstream_task_id or "")
    except errors.UpstreamError:
        return None
    character_id = cameo.get("character_id")
    return character_id if isinstance(character_id, str) and character_id else None


async def _avatar_pointer(ctx: Context, creds: Credentials, cameo: dict[str, Any]) -> str | None:
    """The cameo's avatar, downloaded and uploaded again as the account's profile asset."""
    url = cameo.get("profile_asset_url")
    if not url:
        return None
    body = bytearray()
    async with ctx.sora.media(url, max_bytes=MAX_AVATAR_BYTES) as chunks:
        async for chunk in chunks:
            body += chunk
    content_type = sniff_image_type(bytes(body)) or "image/webp"
    name = f"profile.{_AVATAR_EXTENSIONS[content_type]}"
    return await ctx.sora.upload_profile_asset(creds, bytes(body), content_type, name)


async def _choose_username(ctx: Context, creds: Credentials, wanted: str | None, hint: str | None) -> str:
    """The requested username when it is free, else one derived from the cameo's hint."""
    if wanted and await ctx.sora.username_available(creds, wanted):
        return wanted
    for _ in range(USERNAME_TRIES):
        candidate = derive_username(hint)
        if await ctx.sora.username_available(creds, candidate):
            return candidate
    raise _NoUsername
