"""videos.finalize: download the finished media into storage and complete the job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared import logs
from shared.models import Job, JobState
from shared.sora import errors
from shared.sora.client import MediaNotAllowed
from shared.timeutil import utcnow
from worker.context import Context
from worker.engine import accounts, characters
from worker.engine.common import RetryLater, fail, heartbeat, log, publish, wake_dependent

MAX_DOWNLOAD_ATTEMPTS = 5


async def _clean_url(ctx: Context, job: Job) -> str | None:
    """Publishes the draft, asks for its unwatermarked file, then deletes the post again.

    The post is public while it exists, so it is always deleted, whether or not a link was found. Its id
    is kept on the job first: a finalize whose worker died meanwhile finds it and goes on with it, so the
    post is deleted then (and no second one is made).
    """
    account = await ctx.pool.get(job.account_id) if job.account_id is not None else None
    if account is None:
        return None
    creds = ctx.pool.credentials(account)
    post_id = job.params.get("watermark_post_id")
    if not post_id:
        try:
            post_id = await ctx.sora.publish(creds, job.generation_id or "")
        except errors.UpstreamError as exc:
            log.warning("job %s: publish for the watermark-free file failed: %s", job.id, exc.error_class)
            return None
        await ctx.jobs.merge_params(
            job.id, [JobState.FINALIZING], {"watermark_post_id": post_id}, durable=True
        )
    try:
        if ctx.settings.watermark_parser_url:
            return await ctx.sora.parse_clean_link(
                ctx.settings.watermark_parser_url, post_id, creds.access_token
            )
        return await ctx.sora.post_source_url(creds, post_id)
    except errors.UpstreamError as exc:
        log.warning("job %s: no watermark-free link: %s", job.id, exc.error_class)
        return None
    finally:
        try:
            await ctx.sora.delete_post(creds, post_id)
        except errors.UpstreamError as exc:
            log.error("job %s: could not delete post %s: %s", job.id, post_id, exc.error_class)
        else:
            await ctx.jobs.merge_params(job.id, [JobState.FINALIZING], {"watermark_post_id": None})


async def finalize(ctx: Context, job_id: str, attempt: int = 0) -> None:
    job = await ctx.jobs.get(job_id)
    if job is None or job.state != JobState.FINALIZING:
        return
    logs.bind_job(job)
    await _finalize(ctx, job, attempt)


async def _finalize(ctx: Context, job: Job, attempt: int) -> None:
    # A slow download keeps the job fresh, so the sweeper does not send a second finalize beside it.
    async with heartbeat(ctx, job):
        if job.kind == "character":
            await characters.finalize(ctx, job, attempt)
        else:
            await _finalize_media(ctx, job, attempt)


def start(ctx: Context, job: Job) -> asyncio.Task[None]:
    """Starts finalizing a job a poll has just moved to ``finalizing``, in the poll's own task.

    A finished video is downloaded as soon as its draft is found, beside the rest of the poll, not after a
    hop through the finalize queue behind whatever the worker has already taken. A download worth another
    try goes to that queue as its second attempt; one that broke for any other reason goes there as its
    first. A worker that dies meanwhile leaves a ``finalizing`` row, which the sweeper sends to the queue
    once it has gone silent.
    """
    return asyncio.create_task(_finalize_found(ctx, job))


@logs.for_job
async def _finalize_found(ctx: Context, job: Job) -> None:
    try:
        await _finalize(ctx, job, 0)
    except RetryLater as later:
        ctx.enqueue.finalize(job.id, countdown=later.delay, retries=1)
    except Exception:
        log.exception("job %s: finalize failed; sending it to the queue", job.id)
        ctx.enqueue.finalize(job.id)


async def _finalize_media(ctx: Context, job: Job, attempt: int) -> None:
    if not job.media_url:
        return
    video_key = f"videos/{job.id}/video.mp4" if job.kind == "video" else f"images/{job.id}/image.png"
    media_url = job.media_url
    if job.params.get("watermark_free") and job.generation_id:
        clean = await _clean_url(ctx, job)
        if clean is None and not ctx.settings.watermark_fallback:
            await fail(ctx, job, "watermark_free_failed", "The watermark-free file could not be obtained")
            return
        media_url = clean or media_url
    try:
        async with ctx.sora.media(media_url, max_bytes=ctx.settings.max_media_bytes) as chunks:
            size = await ctx.storage.write(video_key, chunks)
    except MediaNotAllowed as exc:
        await fail(ctx, job, "media_host_not_allowed", str(exc))
        return
    except errors.UpstreamError as exc:
        if attempt + 1 >= MAX_DOWNLOAD_ATTEMPTS or exc.reaction is errors.Reaction.FAIL:
            await fail(ctx, job, "download_failed", "The finished video could not be downloaded")
            return
        log.warning("job %s: media download failed (%s), retrying", job.id, exc.error_class)
        raise RetryLater(min(2**attempt * 2, 60)) from exc

    thumbnail_key = None
    if job.thumbnail_url and job.kind == "video":
        try:
            async with ctx.sora.media(job.thumbnail_url, max_bytes=16 * 1024 * 1024) as chunks:
                await ctx.storage.write(f"videos/{job.id}/thumbnail.webp", chunks)
            thumbnail_key = f"videos/{job.id}/thumbnail.webp"
        except (errors.UpstreamError, MediaNotAllowed) as exc:
            log.info("job %s: no thumbnail (%s)", job.id, exc)

    now = utcnow()
    completed = await ctx.jobs.transition(
        job.id,
        [JobState.FINALIZING],
        state=JobState.COMPLETED,
        progress=100,
        media_key=video_key,
        media_bytes=size,
        thumbnail_key=thumbnail_key,
        completed_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.media_ttl_s),
    )
    if completed is None:
        return
    log.info("job %s completed (%d bytes)", job.id, size)
    await publish(ctx, completed, "Video ready" if job.kind == "video" else "Image ready")
    wake_dependent(ctx, completed)
    if completed.account_id is not None:
        account = await ctx.pool.record_success(completed.account_id, job.kind)
        if job.kind == "video" and account is not None and accounts.quota_worth_reading(account):
            await accounts.check_quota(ctx, completed.account_id, account)
