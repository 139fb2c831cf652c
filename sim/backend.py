"""Backend routes (under ``SIM_BACKEND_PREFIX``): account reads, video create, pending and drafts.

Create refusals, in the order checked: bad or missing Bearer → 401; missing/empty (or, in strict mode,
never issued) ``openai-sentinel-token`` → 400 ``sentinel_block``; a body that is not a valid video request
→ 400 ``invalid_request`` with ``param`` naming the field; the account's in-flight limit reached → 429
``too_many_concurrent_tasks`` with ``error.details.num_tasks``; quota spent → 429 ``rate_limit_reached``
(message "You've reached your video generation limit…", ``error.details.access_resets_in_seconds``). The real
create-time quota error was never captured, so the quota shape is this simulator's choice: clients should
confirm it through ``nf/check``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post

from sim import errors, media
from sim.errors import json_response, upstream_error
from sim.gate import Call, run
from sim.model import FAILURE_REASON, VIOLATION_MARKDOWN, VIOLATION_REASON, Task, find_marker
from sim.state import SimState, decode_cursor, encode_cursor

ORIENTATIONS = ("landscape", "portrait", "square")
N_FRAMES = (150, 300, 450, 600, 750)
MODELS = ("sy_8", "sy_ore", "sy_8_20251208")
SIZES = ("small", "large")
FPS = 30
DRAFTS_DEFAULT_LIMIT = 15
DRAFTS_MAX_LIMIT = 100


def _bad(message: str, param: str | None) -> Response[Any]:
    return upstream_error(400, message, "invalid_request", param=param)


def parse_create(body: Any) -> dict[str, Any] | Response[Any]:
    """The task fields of a valid ``nf/create`` body, or the 400 to answer; unknown fields are ignored."""
    if not isinstance(body, dict):
        return _bad("Request body must be a JSON object.", None)
    if body.get("kind") != "video":
        return _bad("Invalid kind: expected 'video'.", "kind")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _bad("A prompt is required.", "prompt")
    orientation = body.get("orientation")
    if orientation not in ORIENTATIONS:
        return _bad(f"Invalid orientation: {orientation!r}.", "orientation")
    n_frames = body.get("n_frames")
    if isinstance(n_frames, bool) or n_frames not in N_FRAMES:
        return _bad(f"Invalid n_frames: {n_frames!r}.", "n_frames")
    # Remix bodies carry no size, and some clients omit the model: both have upstream defaults.
    model = body.get("model") or "sy_8"
    if model not in MODELS:
        return _bad(f"Invalid model: {model!r}.", "model")
    size = body.get("size") or "small"
    if size not in SIZES:
        return _bad(f"Invalid size: {size!r}.", "size")
    for key in ("style_id", "title", "remix_target_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return _bad(f"Invalid {key}.", key)
    if body.get("inpaint_items") is not None and not isinstance(body["inpaint_items"], list):
        return _bad("inpaint_items must be a list.", "inpaint_items")
    return {
        "prompt": prompt,
        "title": body.get("title"),
        "orientation": orientation,
        "n_frames": n_frames,
        "model": model,
        "size": size,
        "style_id": body.get("style_id"),
        "body": body,
        "marker": find_marker(prompt),
    }


def pending_item(task: Task, status: str, progress: float | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": task.id,
        "status": status,
        "type": "video_gen",
        "progress_pct": progress,
        "prompt": task.prompt,
        "title": task.title,
        "created_at": task.created_at,
        "n_frames": task.n_frames,
        "orientation": task.orientation,
        "generations": [],
    }
    if status == "failed":
        item["failure_reason"] = FAILURE_REASON
        item["error_message"] = FAILURE_REASON
    return item


def draft_item(task: Task, now: float, public_url: str) -> dict[str, Any]:
    assert task.t_draft is not None
    width, height = task.width_height
    item: dict[str, Any] = {
        "id": task.generation_id,
        "generation_id": task.generation_id,
        "task_id": task.id,
        "kind": "sora_draft",
        "prompt": task.prompt,
        "title": task.title,
        "tags": [],
        "width": width,
        "height": height,
        "n_frames": task.n_frames,
        "duration_s": task.n_frames / FPS,
        "created_at": task.t_draft,
        "generation_type": "video_gen",
        "storyboard_id": None,
        "draft_reviewed": False,
        "post_id": None,
        "creation_config": {
            "prompt": task.prompt,
            "n_frames": task.n_frames,
            "style_id": task.style_id,
            "orientation": task.orientation,
            "model": task.model,
            "size": task.size,
            "inpaint_image": None,
            "cameo_profiles": [],
            "remix_target_post": task.body.get("remix_target_id"),
        },
    }
    if task.marker == "violation":
        item["kind"] = "sora_content_violation"
        item["reason_str"] = VIOLATION_REASON
        item["markdown_reason_str"] = VIOLATION_MARKDOWN
        return item
    if task.has_urls(now):
        paths = media.task_paths(task.id)
        signed = {name: media.signed_url(public_url, path, now) for name, path in paths.items()}
        item["url"] = signed["source_wm"]
        item["downloadable_url"] = signed["source_wm"]
        item["encodings"] = {name: {"path": url} for name, url in signed.items()}
    return item


def backend_router(sim: SimState) -> Router:
    cfg = sim.config

    def me(call: Call) -> Response[Any]:
        acct = call.account
        assert acct is not None
        return json_response(
            {"id": acct.user_id, "email": acct.email, "name": acct.name, "username": acct.username}
        )

    def subscriptions(call: Call) -> Response[Any]:
        acct = call.account
        assert acct is not None
        end_ts = int(acct.created_at + 30 * 86400)
        return json_response(
            {
                "data": [
                    {
                        "plan": {"id": acct.plan, "title": acct.plan_title},
                        "end_ts": end_ts,
                        "will_renew": True,
                    }
                ]
            }
        )

    def nf_check(call: Call) -> Response[Any]:
        assert call.account is not None
        return json_response({"rate_limit_and_credit_balance": sim.credit_balance(call.account)})

    def nf_create(call: Call) -> Response[Any]:
        acct = call.account
        assert acct is not None
        sentinel = call.request.headers.get("openai-sentinel-token", "").strip()
        if not sentinel or (cfg.strict_sentinel and sentinel not in sim.sentinel_tokens):
            return upstream_error(400, errors.MSG_SENTINEL, "sentinel_block")
        fields = parse_create(call.body)
        if isinstance(fields, Response):
            return fields
        now = sim.now()
        in_flight = acct.in_flight(now)
        if in_flight >= acct.max_concurrent:
            return errors.concurrency_error(in_flight)
        balance = sim.credit_balance(acct)
        if balance["estimated_num_videos_remaining"] <= 0:
            return upstream_error(
                429,
                errors.MSG_QUOTA,
                "rate_limit_reached",
                details={"access_resets_in_seconds": balance["access_resets_in_seconds"]},
            )
        task = sim.create_task(acct, fields)
        return json_response(
            {
                "id": task.id,
                "task_type": "video_gen",
                "priority": 1,
                "rate_limit_and_credit_balance": sim.credit_balance(acct),
            }
        )

    def pending(call: Call) -> Response[Any]:
        acct = call.account
        assert acct is not None
        now = sim.now()
        items = []
        for task in acct.tasks:
            state = task.pending_state(now)
            if state is not None and task.created_at <= now:
                items.append(pending_item(task, *state))
        return json_response(items)

    def drafts(call: Call) -> Response[Any]:
        acct = call.account
        assert acct is not None
        query = call.request.query_params
        try:
            limit = int(query.get("limit") or DRAFTS_DEFAULT_LIMIT)
        except ValueError:
            return _bad("Invalid limit.", "limit")
        if limit < 1:
            return _bad("Invalid limit.", "limit")
        limit = min(limit, DRAFTS_MAX_LIMIT)
        now = sim.now()
        visible = sorted(
            (t for t in acct.tasks if t.draft_visible(now)), key=lambda t: (t.t_draft, t.seq), reverse=True
        )
        cursor = query.get("cursor")
        if cursor:
            try:
                after = decode_cursor(cursor)
            except ValueError:
                return _bad("Invalid cursor.", "cursor")
            visible = [t for t in visible if (t.t_draft, t.seq) < after]
        page = visible[:limit]
        last = page[-1] if page else None
        next_cursor = encode_cursor(last.t_draft, last.seq) if last and len(visible) > limit else None
        return json_response(
            {"items": [draft_item(t, now, cfg.public_url) for t in page], "cursor": next_cursor}
        )

    # Each handler is a thin shell so routing stays declarative and the gate sees every request.
    @get("/me")
    async def get_me(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "me", me, auth="bearer")

    @get("/billing/subscriptions")
    async def get_subscriptions(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "subscriptions", subscriptions, auth="bearer")

    @get("/nf/check")
    async def get_nf_check(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "nf_check", nf_check, auth="bearer")

    @post("/nf/create")
    async def post_nf_create(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "nf_create", nf_create, auth="bearer")

    @get(["/nf/pending", "/nf/pending/v2"])
    async def get_pending(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "pending", pending, auth="bearer")

    @get(["/project_y/profile/drafts", "/project_y/profile/drafts/v2"])
    async def get_drafts(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "drafts", drafts, auth="bearer")

    return Router(
        path=cfg.backend_prefix,
        route_handlers=[get_me, get_subscriptions, get_nf_check, post_nf_create, get_pending, get_drafts],
    )
