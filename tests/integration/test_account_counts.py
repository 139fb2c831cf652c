"""What a finished job does to its account's counts, on real Postgres: the totals, today's counts (started
again on a new day), the consecutive-error count and the known video allowance."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shared.models import Account
from shared.resources import Resources
from shared.settings import Settings
from shared.timeutil import utcnow
from tests.integration.conftest import own_resources

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[Resources]:
    async with own_resources(settings) as resources:
        yield resources


async def add_account(ctx: Resources, **values: object) -> int:
    async with ctx.sessions() as session:
        account = Account(
            token_hash=f"counts-{secrets.token_hex(8)}", access_token_enc=ctx.box.seal("at"), **values
        )
        session.add(account)
        await session.commit()
        return account.id  # type: ignore[return-value]


async def test_finished_videos_count_from_zero_on_a_new_day_and_lower_the_known_allowance(
    ctx: Resources,
) -> None:
    yesterday = utcnow().date() - timedelta(days=1)
    account_id = await add_account(
        ctx,
        video_count=10,
        image_count=7,
        consecutive_errors=2,
        quota_remaining=2,
        today_date=yesterday,
        today_video_count=4,
        today_image_count=3,
        today_error_count=5,
    )

    first = await ctx.pool.record_success(account_id, "video")
    assert first is not None
    assert (first.video_count, first.image_count, first.consecutive_errors) == (11, 7, 0)
    assert first.today_date == utcnow().date()
    assert (first.today_video_count, first.today_image_count, first.today_error_count) == (1, 0, 0)
    assert first.quota_remaining == 1

    for _ in range(2):
        last = await ctx.pool.record_success(account_id, "video")
    assert last is not None
    assert (last.video_count, last.today_video_count) == (13, 3)
    assert last.quota_remaining == 0  # never below zero


async def test_a_finished_image_counts_as_an_image_and_a_character_only_clears_the_errors(
    ctx: Resources,
) -> None:
    today = utcnow().date()
    account_id = await add_account(
        ctx,
        consecutive_errors=1,
        quota_remaining=5,
        today_date=today,
        today_video_count=2,
        today_image_count=1,
        today_error_count=1,
    )

    image = await ctx.pool.record_success(account_id, "image")
    assert image is not None
    assert (image.video_count, image.image_count, image.consecutive_errors, image.quota_remaining) == (
        0,
        1,
        0,
        5,
    )
    assert (image.today_video_count, image.today_image_count, image.today_error_count) == (2, 2, 1)

    await ctx.pool.record_error(account_id, "server_error", account_fault=True, threshold=3)
    character = await ctx.pool.record_success(account_id, "character")
    assert character is not None
    assert (character.video_count, character.image_count, character.consecutive_errors) == (0, 1, 0)
    assert (character.today_video_count, character.today_image_count, character.quota_remaining) == (2, 2, 5)
    assert await ctx.pool.record_success(account_id + 1_000_000, "video") is None
