"""The JSON objects several backend routes share: posts (detail and feed items), profiles and cameos.

A profile is an account's or a character's. A character's ``user_id`` is its ``ch_…`` id, its picture the
cameo's avatar, and ``owner_profile`` the account that made it; an account's ``owner_profile`` is null.
"""

from __future__ import annotations

from typing import Any

from sim import media
from sim.model import Account, Cameo, Post, Task
from sim.state import SimState

PROFILE_URL = "https://sora.chatgpt.com/profile/"


def signed_encodings(task: Task, now: float, public_url: str) -> dict[str, str]:
    paths = media.task_paths(task.id)
    return {name: media.signed_url(public_url, path, now) for name, path in paths.items()}


def attachment(post: Post, task: Task, now: float, public_url: str) -> dict[str, Any]:
    signed = signed_encodings(task, now, public_url)
    width, height = task.width_height
    return {
        "id": f"{post.id}-attachment-0",
        "kind": "sora",
        "generation_id": task.generation_id,
        "generation_type": "video_gen",
        "task_id": task.id,
        "url": signed["source_wm"],
        "downloadable_url": signed["source_wm"],
        "encodings": {name: {"path": url} for name, url in signed.items()},
        "n_frames": task.n_frames,
        "width": width,
        "height": height,
        "prompt": task.prompt,
        "output_blocked": False,
    }


def post_view(sim: SimState, post: Post, viewer: Account) -> dict[str, Any]:
    """``{post, profile, attachments}`` as the post detail answers it; a feed item is ``{post, profile}``."""
    now = sim.now()
    task = sim.tasks[post.task_id]
    owner = sim.accounts[post.account_id]
    attachments = [attachment(post, task, now, sim.config.public_url)]
    return {
        "post": {
            "id": post.id,
            "permalink": post.permalink,
            "shared_by": owner.user_id,
            "is_owner": owner.id == viewer.id,
            "posted_to_public": True,
            "posted_at": post.created_at,
            "updated_at": post.created_at,
            "text": post.text,
            "like_count": post.like_count,
            "view_count": post.view_count,
            "remix_count": sum(1 for t in sim.tasks.values() if t.inputs.get("remix_target_id") == post.id),
            "preview_image_url": attachments[0]["encodings"]["thumbnail"]["path"],
            "attachments": attachments,
        },
        "profile": account_profile(sim, owner),
        "attachments": attachments,
    }


def account_profile(sim: SimState, account: Account) -> dict[str, Any]:
    return {
        "user_id": account.user_id,
        "username": account.username,
        "display_name": account.name,
        "profile_picture_url": None,
        "permalink": PROFILE_URL + account.username if account.username else None,
        "follower_count": 0,
        "following_count": 0,
        "post_count": sum(
            1 for p in sim.posts.values() if p.account_id == account.id and p.deleted_at is None
        ),
        "verified": False,
        "can_cameo": False,
        "description": None,
        "owner_profile": None,
    }


def avatar_url(sim: SimState, cameo: Cameo) -> str:
    return media.signed_url(sim.config.public_url, media.cameo_path(cameo.id), sim.now())


def character_profile(sim: SimState, cameo: Cameo, viewer: Account) -> dict[str, Any]:
    """A finalized character's cameo profile; ``can_cameo`` when it is public or the viewer's own."""
    assert cameo.character_id is not None and cameo.username is not None
    featured = {t.id for t in sim.tasks.values() if featuring(t, cameo.character_id)}
    return {
        "user_id": cameo.character_id,
        "character_id": cameo.character_id,
        "cameo_id": cameo.id,
        "username": cameo.username,
        "display_name": cameo.display_name,
        "profile_picture_url": avatar_url(sim, cameo),
        "permalink": PROFILE_URL + cameo.username,
        "follower_count": 0,
        "following_count": 0,
        "post_count": sum(1 for p in sim.posts.values() if p.task_id in featured and p.deleted_at is None),
        "verified": False,
        "can_cameo": cameo.visibility == "public" or cameo.account_id == viewer.id,
        "visibility": cameo.visibility,
        "description": None,
        "owner_profile": account_profile(sim, sim.accounts[cameo.account_id]),
    }


def featuring(task: Task, character_id: str) -> bool:
    return any(p["character_id"] == character_id for p in task.cameo_profiles)


def cameo_progress(sim: SimState, cameo: Cameo) -> dict[str, Any]:
    """``GET /project_y/cameos/in_progress/{id}``: hints and the avatar URL only once it completed."""
    now = sim.now()
    state = cameo.state(now)
    item: dict[str, Any] = {
        "id": cameo.id,
        "status": "finalized" if state == "completed" else state,
        "status_message": {"processing": "Processing", "completed": "Completed"}.get(
            state, cameo.failure_reason
        ),
        "progress_pct": cameo.progress(now) if state == "processing" else None,
        "created_at": cameo.created_at,
        "display_name_hint": None,
        "username_hint": None,
        "profile_asset_url": None,
        "instruction_set_hint": None,
        "instruction_set": cameo.instruction_set,
        "character_id": cameo.character_id,
    }
    if state == "completed":
        item["display_name_hint"] = cameo.display_name_hint
        item["username_hint"] = cameo.username_hint
        item["profile_asset_url"] = avatar_url(sim, cameo)
        item["instruction_set_hint"] = f"{cameo.display_name_hint} is friendly and camera-ready."
    return item
