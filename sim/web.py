"""Routes outside the backend prefix: ST → AT, RT → AT, the stub sentinel provider, the media files (videos,
images, uploads and cameo avatars), and a stand-in for the operator-run watermark parser
(``POST /parser/get-sora-link``, no auth).

OAuth errors (all in the upstream error shape): missing fields 400 ``invalid_request``; a grant type other
than ``refresh_token`` 400 ``unsupported_grant_type``; an unknown or revoked RT 401 ``invalid_grant``; an RT
that was already rotated out 401 ``refresh_token_reused``; an RT presented with another ``client_id`` 400
``invalid_grant`` with ``param: "client_id"`` (the RT stays valid).

The parser is not an upstream service, so its errors are its own flat ``{"error": "…"}``: 400 for a body
without a ``url``, 404 when the URL names no live post.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from sim import errors, media, tokens
from sim.errors import json_response, upstream_error
from sim.gate import Call, run
from sim.model import POST_ID_RE
from sim.state import SimState


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def web_handlers(sim: SimState) -> list[HTTPRouteHandler]:
    def session(call: Call) -> Response[Any]:
        acct = call.account
        now = sim.now()
        if acct is None or now >= acct.session_expires_at:
            return upstream_error(401, "Your session has expired. Please sign in again.", "session_invalid")
        access_token = sim.mint_access_token(acct, now)
        return json_response(
            {
                "user": {
                    "id": acct.user_id,
                    "name": acct.name,
                    "email": acct.email,
                    "image": None,
                    "mfa": False,
                },
                "expires": _iso(acct.session_expires_at),
                "accessToken": access_token,
                "authProvider": "openai",
            }
        )

    def oauth_token(call: Call) -> Response[Any]:
        body = call.body if isinstance(call.body, dict) else {}
        rt, client_id = body.get("refresh_token"), body.get("client_id")
        if not isinstance(rt, str) or not rt or not isinstance(client_id, str) or not client_id:
            return upstream_error(400, "refresh_token and client_id are required.", "invalid_request")
        if body.get("grant_type") != "refresh_token":
            return upstream_error(
                400, "Unsupported grant_type.", "unsupported_grant_type", param="grant_type"
            )
        if rt in sim.used_refresh_tokens:
            return upstream_error(
                401,
                "Your refresh token has already been used to generate a new access "
                "token. Please try signing in again.",
                "refresh_token_reused",
            )
        acct = sim.accounts.get(sim.refresh_tokens.get(rt, ""))
        if acct is None:
            return upstream_error(
                401,
                "Your refresh token is invalid or has been revoked. Please try signing in again.",
                "invalid_grant",
            )
        if client_id != acct.client_id:
            return upstream_error(
                400, "This refresh token was issued to another client.", "invalid_grant", param="client_id"
            )
        now = sim.now()
        answer: dict[str, Any] = {
            "access_token": sim.mint_access_token(acct, now),
            "token_type": "Bearer",
            "expires_in": int(acct.token_ttl_s),
            "scope": "openid profile email offline_access",
        }
        if call.modifier("no_rotated_rt") is None:
            new_rt = tokens.opaque("rt_", 32)
            del sim.refresh_tokens[rt]
            sim.used_refresh_tokens[rt] = acct.id
            sim.refresh_tokens[new_rt] = acct.id
            acct.refresh_token = new_rt
            answer["refresh_token"] = new_rt
        return json_response(answer)

    def sentinel(call: Call) -> Response[Any]:
        return json_response(sim.issue_sentinel())

    def serve_media(call: Call) -> Response[Any]:
        params = call.request.path_params
        task = sim.tasks.get(params["task_id"])
        if task is None or not task.media_ready(sim.now()):
            return errors.blob_not_found()
        name = params["name"]
        variant = params.get("variant")
        if variant is None:
            still = media.STILL_FILES.get(name)
            if still is None:
                return errors.blob_not_found()
            return Response(content=media.asset(still[0]), status_code=200, media_type=still[1])
        if variant not in (media.CLEAN, media.WATERMARKED) or name not in media.VIDEO_FILES:
            return errors.blob_not_found()
        data = media.video_bytes(task.id, variant, name)
        if task.media_fetched_at is None:
            task.media_fetched_at = sim.now()
        return Response(
            content=data, status_code=200, media_type="video/mp4", headers={"x-ms-blob-type": "BlockBlob"}
        )

    def serve_image(call: Call) -> Response[Any]:
        params = call.request.path_params
        task = sim.image_tasks.get(params["task_id"])
        stem, _, ext = params["name"].partition(".")
        if task is None or ext != "png" or not stem.isdigit():
            return errors.blob_not_found()
        index = int(stem)
        ready = task.produces_images and task.generations_ready(sim.now())
        if not ready or index >= len(task.generation_ids):
            return errors.blob_not_found()
        data = media.image_bytes(task.id, index, task.width, task.height)
        return Response(
            content=data, status_code=200, media_type="image/png", headers={"x-ms-blob-type": "BlockBlob"}
        )

    def serve_upload(call: Call) -> Response[Any]:
        upload = sim.uploads.get(call.request.path_params["upload_id"])
        if upload is None:
            return errors.blob_not_found()
        return Response(content=upload.data, status_code=200, media_type=upload.content_type)

    def serve_avatar(call: Call) -> Response[Any]:
        params = call.request.path_params
        cameo = sim.cameos.get(params["cameo_id"])
        if cameo is None or params["name"] != "profile.webp" or cameo.state(sim.now()) != "completed":
            return errors.blob_not_found()
        return Response(
            content=media.avatar_bytes(),
            status_code=200,
            media_type="image/webp",
            headers={"x-ms-blob-type": "BlockBlob"},
        )

    def parser(call: Call) -> Response[Any]:
        body = call.body if isinstance(call.body, dict) else {}
        url = body.get("url")
        if not isinstance(url, str) or not url.strip():
            return json_response({"error": "url is required"}, 400)
        match = POST_ID_RE.search(url)
        post = sim.live_post(match.group(0)) if match else None
        if post is None:
            return json_response({"error": "Post not found or no longer public."}, 404)
        now = sim.now()
        clean = media.task_paths(post.task_id)["source"]
        return json_response({"download_link": media.signed_url(sim.config.public_url, clean, now)})

    @get("/api/auth/session")
    async def get_session(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "session", session, auth="session")

    @post("/oauth/token")
    async def post_oauth_token(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "oauth_token", oauth_token, auth="oauth")

    @post("/sentinel")
    async def post_sentinel(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "sentinel", sentinel, auth=None)

    @get(["/media/videos/{task_id:str}/{name:str}", "/media/videos/{task_id:str}/{variant:str}/{name:str}"])
    async def get_media(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "media", serve_media, auth="media")

    @get("/media/images/{task_id:str}/{name:str}")
    async def get_image(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "media", serve_image, auth="media")

    @get("/media/uploads/{upload_id:str}")
    async def get_upload(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "media", serve_upload, auth="media")

    @get("/media/cameos/{cameo_id:str}/{name:str}")
    async def get_avatar(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "media", serve_avatar, auth="media")

    @post("/parser/get-sora-link")
    async def post_parser(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(sim, request, "parser", parser, auth=None)

    return [
        get_session,
        post_oauth_token,
        post_sentinel,
        get_media,
        get_image,
        get_upload,
        get_avatar,
        post_parser,
    ]
