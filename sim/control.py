"""The control API under ``/_sim``: seed accounts, inject faults, move the clock, read what happened.

No auth, JSON in and out; mistakes in a control call answer 400 ``{"error": "<what is wrong>"}`` and unknown
ids 404, so a broken test fails loudly instead of silently testing nothing.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, patch, post

from sim.errors import json_response
from sim.faults import parse_fault
from sim.gate import parse_json
from sim.state import SimState

REVOCABLE = ("access", "session", "refresh")


def _problem(message: str, status: int = 400) -> Response[Any]:
    return json_response({"error": message}, status)


async def _object(
    request: Request[Any, Any, Any], *, required: bool = True
) -> dict[str, Any] | Response[Any]:
    raw = await request.body()
    if not raw.strip() and not required:
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        return _problem("body must be a JSON object")
    return data


def control_router(sim: SimState) -> Router:
    @get("/health")
    async def health() -> Response[Any]:
        return json_response({"ok": True})

    @post("/accounts")
    async def create_account(request: Request[Any, Any, Any]) -> Response[Any]:
        data = await _object(request, required=False)
        if isinstance(data, Response):
            return data
        try:
            with sim.lock:
                return json_response(sim.register_account(data))
        except ValueError as exc:
            return _problem(str(exc))

    @get("/accounts")
    async def list_accounts() -> Response[Any]:
        with sim.lock:
            return json_response([sim.account_status(a) for a in sim.accounts.values() if not a.hidden])

    @get("/accounts/{account_id:str}")
    async def get_account(request: Request[Any, Any, Any]) -> Response[Any]:
        account_id = request.path_params["account_id"]
        with sim.lock:
            account = sim.accounts.get(account_id)
            if account is None:
                return _problem(f"no account {account_id}", 404)
            return json_response(sim.account_status(account))

    @patch("/accounts/{account_id:str}")
    async def update_account(request: Request[Any, Any, Any]) -> Response[Any]:
        account_id = request.path_params["account_id"]
        data = await _object(request)
        if isinstance(data, Response):
            return data
        with sim.lock:
            account = sim.accounts.get(account_id)
            if account is None:
                return _problem(f"no account {account_id}", 404)
            try:
                sim.update_account(account, data)
            except ValueError as exc:
                return _problem(str(exc))
            return json_response(sim.account_status(account))

    @post("/accounts/{account_id:str}/revoke")
    async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        account_id = request.path_params["account_id"]
        data = await _object(request, required=False)
        if isinstance(data, Response):
            return data
        kinds = data.get("tokens", list(REVOCABLE))
        if not isinstance(kinds, list) or any(k not in REVOCABLE for k in kinds):
            return _problem(f"tokens must be a list drawn from {REVOCABLE}")
        with sim.lock:
            account = sim.accounts.get(account_id)
            if account is None:
                return _problem(f"no account {account_id}", 404)
            sim.revoke(account, kinds)
        return json_response({"revoked": kinds})

    @get("/faults")
    async def list_faults() -> Response[Any]:
        with sim.lock:
            return json_response([f.as_dict() for f in sim.faults.faults])

    @post("/faults")
    async def add_fault(request: Request[Any, Any, Any]) -> Response[Any]:
        data = await _object(request)
        if isinstance(data, Response):
            return data
        try:
            fault = parse_fault(data)
        except ValueError as exc:
            return _problem(str(exc))
        with sim.lock:
            sim.faults.add(fault)
        return json_response({"id": fault.id})

    @delete("/faults/{fault_id:str}", status_code=200)
    async def remove_fault(request: Request[Any, Any, Any]) -> Response[Any]:
        fault_id = request.path_params["fault_id"]
        with sim.lock:
            removed = sim.faults.remove(fault_id)
        return json_response({"removed": removed}, 200 if removed else 404)

    @delete("/faults", status_code=200)
    async def clear_faults() -> Response[Any]:
        with sim.lock:
            sim.faults.clear()
        return json_response({"cleared": True})

    @get("/clock")
    async def get_clock() -> Response[Any]:
        return json_response(
            {
                "now": sim.now(),
                "offset": sim.clock.offset,
                "mode": sim.clock.mode,
                "time_scale": sim.config.time_scale,
            }
        )

    @post("/clock/advance")
    async def advance(request: Request[Any, Any, Any]) -> Response[Any]:
        data = await _object(request)
        if isinstance(data, Response):
            return data
        seconds = data.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return _problem("seconds must be a number >= 0")
        now = sim.clock.advance(float(seconds))
        return json_response({"now": now, "offset": sim.clock.offset})

    @get("/requests")
    async def requests(request: Request[Any, Any, Any]) -> Response[Any]:
        query = request.query_params
        route, account = query.get("route"), query.get("account")
        try:
            since = int(query.get("since") or 0)
            limit = int(query["limit"]) if query.get("limit") else None
        except ValueError:
            return _problem("since and limit must be integers")
        with sim.lock:
            entries = [
                e
                for e in sim.log
                if e["seq"] > since
                and (not route or e["route"] == route)
                and (not account or e["account_id"] == account)
            ]
        if limit is not None:
            entries = entries[-limit:]
        return json_response(entries)

    @get("/stats")
    async def stats() -> Response[Any]:
        with sim.lock:
            return json_response(sim.stats())

    @get("/tasks")
    async def list_tasks(request: Request[Any, Any, Any]) -> Response[Any]:
        account = request.query_params.get("account")
        with sim.lock:
            every = [*sim.tasks.values(), *sim.image_tasks.values()]
            return json_response(
                [sim.task_status(t) for t in every if not account or t.account_id == account]
            )

    @get("/tasks/{task_id:str}")
    async def get_task(request: Request[Any, Any, Any]) -> Response[Any]:
        task_id = request.path_params["task_id"]
        with sim.lock:
            task = sim.tasks.get(task_id) or sim.image_tasks.get(task_id)
            if task is None:
                return _problem(f"no task {task_id}", 404)
            return json_response(sim.task_status(task))

    @get("/uploads/{upload_id:str}")
    async def get_upload(request: Request[Any, Any, Any]) -> Response[Any]:
        upload_id = request.path_params["upload_id"]
        with sim.lock:
            upload = sim.uploads.get(upload_id)
            if upload is None:
                return _problem(f"no upload {upload_id}", 404)
            return json_response(sim.upload_status(upload))

    @post("/posts")
    async def seed_post(request: Request[Any, Any, Any]) -> Response[Any]:
        data = await _object(request, required=False)
        if isinstance(data, Response):
            return data
        with sim.lock:
            try:
                post = sim.seed_post(data)
            except LookupError as exc:
                return _problem(str(exc.args[0]), 404)
            except ValueError as exc:
                return _problem(str(exc))
            return json_response(sim.post_status(post))

    @get("/posts")
    async def list_posts(request: Request[Any, Any, Any]) -> Response[Any]:
        account = request.query_params.get("account")
        with sim.lock:
            return json_response(
                [sim.post_status(p) for p in sim.posts.values() if not account or p.account_id == account]
            )

    @get("/posts/{post_id:str}")
    async def get_post(request: Request[Any, Any, Any]) -> Response[Any]:
        post_id = request.path_params["post_id"]
        with sim.lock:
            post = sim.posts.get(post_id)
            if post is None:
                return _problem(f"no post {post_id}", 404)
            return json_response(sim.post_status(post))

    @get("/characters")
    async def list_characters(request: Request[Any, Any, Any]) -> Response[Any]:
        account = request.query_params.get("account")
        with sim.lock:
            return json_response(
                [sim.cameo_status(c) for c in sim.cameos.values() if not account or c.account_id == account]
            )

    @get("/characters/{cameo_or_character_id:str}")
    async def get_character(request: Request[Any, Any, Any]) -> Response[Any]:
        key = request.path_params["cameo_or_character_id"]
        with sim.lock:
            cameo = sim.cameos.get(key) or sim.characters.get(key)
            if cameo is None:
                return _problem(f"no cameo or character {key}", 404)
            return json_response(sim.cameo_status(cameo))

    @post("/sentinel/revoke")
    async def revoke_sentinel() -> Response[Any]:
        with sim.lock:
            forgotten = len(sim.sentinel_tokens)
            sim.sentinel_tokens.clear()
        return json_response({"revoked": forgotten})

    @post("/reset")
    async def reset() -> Response[Any]:
        sim.reset()
        return json_response({"ok": True})

    return Router(
        path="/_sim",
        route_handlers=[
            health,
            create_account,
            list_accounts,
            get_account,
            update_account,
            revoke,
            list_faults,
            add_fault,
            remove_fault,
            clear_faults,
            get_clock,
            advance,
            requests,
            stats,
            list_tasks,
            get_task,
            get_upload,
            seed_post,
            list_posts,
            get_post,
            list_characters,
            get_character,
            revoke_sentinel,
            reset,
        ],
    )
