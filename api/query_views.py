"""The sora2api query answers (``{"success": true, …}``) and their conversion from upstream JSON.

The upstream's field names are "last observed", so every reader here is lenient: a missing or
oddly typed field becomes null. The answers themselves always have the same keys and types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

FRAMES_PER_SECOND = 30


class Attachment(msgspec.Struct):
    kind: str | None
    url: str | None
    downloadable_url: str | None
    width: int | None
    height: int | None
    n_frames: int | None
    duration_seconds: int | float | None


class Author(msgspec.Struct):
    user_id: str | None
    username: str | None
    display_name: str | None
    profile_picture_url: str | None


class Post(msgspec.Struct):
    id: str | None
    text: str | None
    permalink: str | None
    preview_image_url: str | None
    posted_at: str | None
    like_count: int | None
    view_count: int | None
    remix_count: int | None
    attachment: Attachment
    author: Author


class FeedPage(msgspec.Struct, kw_only=True):
    success: bool = True
    cut: str
    count: int
    cursor: str | None
    items: list[Post]


class UserFeedPage(msgspec.Struct, kw_only=True):
    success: bool = True
    user_id: str
    count: int
    cursor: str | None
    items: list[Post]


class TokenFeedPage(msgspec.Struct, kw_only=True):
    success: bool = True
    token_id: int
    count: int
    cursor: str | None
    items: list[Post]


class Profile(msgspec.Struct):
    user_id: str | None
    username: str | None
    display_name: str | None
    profile_picture_url: str | None
    follower_count: int | None


class ProfileAnswer(msgspec.Struct, kw_only=True):
    success: bool = True
    profile: Profile


class SearchResult(msgspec.Struct):
    user_id: str | None
    username: str | None
    display_name: str | None
    profile_picture_url: str | None
    can_cameo: bool | None
    token: str | None


class SearchAnswer(msgspec.Struct, kw_only=True):
    success: bool = True
    query: str
    count: int
    results: list[SearchResult]


class InviteAnswer(msgspec.Struct, kw_only=True):
    success: bool = True
    invite_code: str | None
    remaining_count: int | None
    total_count: int | None
    email: str | None


class Stats(msgspec.Struct):
    total_tokens: int
    active_tokens: int
    today_images: int
    total_images: int
    today_videos: int
    total_videos: int
    today_errors: int
    total_errors: int


class StatsAnswer(msgspec.Struct, kw_only=True):
    success: bool = True
    stats: Stats


# Lenient readers ---------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _timestamp(value: Any) -> str | None:
    """ISO 8601 in UTC (``2024-01-01T00:00:00Z``); epoch seconds are converted, strings kept."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _cursor(answer: dict[str, Any]) -> str | None:
    cursor = answer.get("cursor")
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        return str(cursor)
    return _str(cursor) or None


# Conversions -------------------------------------------------------------------------


def _duration(n_frames: int | None) -> int | float | None:
    if not n_frames:
        return None
    seconds = round(n_frames / FRAMES_PER_SECOND, 2)
    return int(seconds) if seconds.is_integer() else seconds


def _kind(raw: dict[str, Any], n_frames: int | None) -> str | None:
    if not raw:
        return None
    kind = _str(raw.get("kind"))
    if kind in ("video", "image"):
        return kind
    generation_type = _str(raw.get("generation_type")) or ""
    if generation_type.startswith("image") or n_frames == 1:
        return "image"
    return "video"


def attachment_of(raw: dict[str, Any]) -> Attachment:
    n_frames = _int(raw.get("n_frames"))
    return Attachment(
        kind=_kind(raw, n_frames),
        url=_str(raw.get("url")),
        downloadable_url=_str(raw.get("downloadable_url")),
        width=_int(raw.get("width")),
        height=_int(raw.get("height")),
        n_frames=n_frames,
        duration_seconds=_duration(n_frames),
    )


def author_of(raw: dict[str, Any]) -> Author:
    return Author(
        user_id=_str(raw.get("user_id")),
        username=_str(raw.get("username")),
        display_name=_str(raw.get("display_name")),
        profile_picture_url=_str(raw.get("profile_picture_url")),
    )


def post_of(item: Any) -> Post:
    """A feed item: ``{post, profile}`` (the feed), or a bare post (some profile feeds)."""
    item = _dict(item)
    post = _dict(item.get("post")) or item
    attachments = post.get("attachments") or item.get("attachments")
    first = _dict(attachments[0]) if isinstance(attachments, list) and attachments else {}
    thumbnail = _dict(_dict(first.get("encodings")).get("thumbnail")).get("path")
    profile = _dict(item.get("profile")) or _dict(post.get("profile")) or _dict(post.get("shared_by"))
    return Post(
        id=_str(post.get("id")),
        text=_str(post.get("text")),
        permalink=_str(post.get("permalink")),
        preview_image_url=_str(post.get("preview_image_url")) or _str(thumbnail),
        posted_at=_timestamp(post.get("posted_at")),
        like_count=_int(post.get("like_count")),
        view_count=_int(post.get("view_count")),
        remix_count=_int(post.get("remix_count")),
        attachment=attachment_of(first),
        author=author_of(profile),
    )


def posts_of(answer: dict[str, Any], limit: int) -> tuple[list[Post], str | None]:
    items = answer.get("items")
    posts = [post_of(item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    return posts[:limit], _cursor(answer)


def feed_page(answer: dict[str, Any], *, cut: str, limit: int) -> FeedPage:
    posts, cursor = posts_of(answer, limit)
    return FeedPage(cut=cut, count=len(posts), cursor=cursor, items=posts)


def user_feed_page(answer: dict[str, Any], *, user_id: str, limit: int) -> UserFeedPage:
    posts, cursor = posts_of(answer, limit)
    return UserFeedPage(user_id=user_id, count=len(posts), cursor=cursor, items=posts)


def token_feed_page(answer: dict[str, Any], *, token_id: int, limit: int) -> TokenFeedPage:
    posts, cursor = posts_of(answer, limit)
    return TokenFeedPage(token_id=token_id, count=len(posts), cursor=cursor, items=posts)


def profile_answer(answer: dict[str, Any]) -> ProfileAnswer:
    raw = _dict(answer.get("profile")) or answer
    return ProfileAnswer(
        profile=Profile(
            user_id=_str(raw.get("user_id")),
            username=_str(raw.get("username")),
            display_name=_str(raw.get("display_name")),
            profile_picture_url=_str(raw.get("profile_picture_url")),
            follower_count=_int(raw.get("follower_count")),
        )
    )


def search_answer(answer: dict[str, Any], *, query: str, limit: int) -> SearchAnswer:
    results: list[SearchResult] = []
    items = answer.get("items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        profile = _dict(item.get("profile")) or item
        results.append(
            SearchResult(
                user_id=_str(profile.get("user_id")),
                username=_str(profile.get("username")),
                display_name=_str(profile.get("display_name")),
                profile_picture_url=_str(profile.get("profile_picture_url")),
                can_cameo=_bool(profile.get("can_cameo")),
                token=_str(item.get("token")),
            )
        )
    results = results[:limit]
    return SearchAnswer(query=query, count=len(results), results=results)


def invite_answer(answer: dict[str, Any], *, email: str | None) -> InviteAnswer:
    total = _int(answer.get("total_count"))
    redeemed = _int(answer.get("redeemed_count"))
    remaining = _int(answer.get("remaining_count"))
    if remaining is None and total is not None:
        remaining = max(total - (redeemed or 0), 0)
    return InviteAnswer(
        invite_code=_str(answer.get("invite_code")) or _str(answer.get("code")),
        remaining_count=remaining,
        total_count=total,
        email=email,
    )
