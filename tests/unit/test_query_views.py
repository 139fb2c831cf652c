"""Upstream feed, profile, search and invite JSON → the sora2api answers: lenient in, fixed shape out."""

from __future__ import annotations

import msgspec

from api.query_views import feed_page, invite_answer, post_of, profile_answer, search_answer

POST_KEYS = {
    "id",
    "text",
    "permalink",
    "preview_image_url",
    "posted_at",
    "like_count",
    "view_count",
    "remix_count",
    "attachment",
    "author",
}
ATTACHMENT_KEYS = {"kind", "url", "downloadable_url", "width", "height", "n_frames", "duration_seconds"}
AUTHOR_KEYS = {"user_id", "username", "display_name", "profile_picture_url"}


def _json(value: msgspec.Struct) -> dict:
    return msgspec.json.decode(msgspec.json.encode(value))


def test_a_feed_item_maps_every_field() -> None:
    item = {
        "post": {
            "id": "s_" + "a" * 32,
            "text": "a fox",
            "permalink": "https://sora.chatgpt.com/p/s_x",
            "posted_at": 1704067200.25,
            "like_count": 3,
            "view_count": 40,
            "remix_count": 1,
            "attachments": [
                {
                    "kind": "sora",
                    "generation_type": "video_gen",
                    "url": "https://m/wm.mp4",
                    "downloadable_url": "https://m/dl.mp4",
                    "width": 640,
                    "height": 352,
                    "n_frames": 450,
                    "encodings": {"thumbnail": {"path": "https://m/thumb.webp"}},
                }
            ],
        },
        "profile": {
            "user_id": "user-1",
            "username": "fox",
            "display_name": "Fox",
            "profile_picture_url": None,
        },
    }
    post = _json(post_of(item))
    assert set(post) == POST_KEYS
    assert post["posted_at"] == "2024-01-01T00:00:00Z"
    assert post["preview_image_url"] == "https://m/thumb.webp"  # encodings.thumbnail.path when absent
    assert post["attachment"] == {
        "kind": "video",
        "url": "https://m/wm.mp4",
        "downloadable_url": "https://m/dl.mp4",
        "width": 640,
        "height": 352,
        "n_frames": 450,
        "duration_seconds": 15,
    }
    assert post["author"] == {
        "user_id": "user-1",
        "username": "fox",
        "display_name": "Fox",
        "profile_picture_url": None,
    }


def test_missing_and_oddly_typed_fields_become_null_never_an_error() -> None:
    post = _json(post_of({"post": {"id": 12, "like_count": "7", "view_count": True, "attachments": "x"}}))
    assert set(post) == POST_KEYS
    assert post["id"] is None and post["like_count"] == 7 and post["view_count"] is None
    assert set(post["attachment"]) == ATTACHMENT_KEYS and all(v is None for v in post["attachment"].values())
    assert set(post["author"]) == AUTHOR_KEYS and all(v is None for v in post["author"].values())

    page = _json(feed_page({"items": [None, "x", {}], "cursor": 5}, cut="nf2_top", limit=8))
    assert (page["success"], page["cut"], page["count"], page["cursor"]) == (True, "nf2_top", 1, "5")
    assert _json(feed_page({}, cut="nf2_latest", limit=8))["items"] == []


def test_feed_page_keeps_at_most_limit_items() -> None:
    page = feed_page({"items": [{"post": {"id": str(i)}} for i in range(5)]}, cut="nf2_latest", limit=2)
    assert page.count == 2 and [p.id for p in page.items] == ["0", "1"]


def test_profile_search_and_invite_shapes() -> None:
    profile = _json(profile_answer({"user_id": "user-1", "username": "fox", "follower_count": 9, "extra": 1}))
    assert profile == {
        "success": True,
        "profile": {
            "user_id": "user-1",
            "username": "fox",
            "display_name": None,
            "profile_picture_url": None,
            "follower_count": 9,
        },
    }
    found = _json(
        search_answer(
            {
                "items": [
                    {"profile": {"user_id": "ch_1", "username": "cat", "can_cameo": True}, "token": "<@ch_1>"}
                ]
            },
            query="ca",
            limit=10,
        )
    )
    assert found["query"] == "ca" and found["count"] == 1
    assert found["results"][0] == {
        "user_id": "ch_1",
        "username": "cat",
        "display_name": None,
        "profile_picture_url": None,
        "can_cameo": True,
        "token": "<@ch_1>",
    }
    invite = _json(
        invite_answer({"invite_code": "AB12", "redeemed_count": 2, "total_count": 5}, email="a@b.c")
    )
    assert invite == {
        "success": True,
        "invite_code": "AB12",
        "remaining_count": 3,
        "total_count": 5,
        "email": "a@b.c",
    }
