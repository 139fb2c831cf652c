"""The sora2api query routes (contract section 7): short upstream reads with a pooled account.

A read takes no generation slot. Each answer is kept in Redis for ``QUERY_CACHE_S`` seconds,
keyed by route, parameters and ``token_id``; errors are never kept. ``/v1/stats`` reads the
accounts table only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
import sqlalchemy as sa
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from redis.exceptions import RedisError

from api.auth import client_auth
from api.bounds import row_id
from api.query_views import (
    FeedPage,
    InviteAnswer,
    ProfileAnswer,
    SearchAnswer,
    Stats,
    StatsAnswer,
    TokenFeedPage,
    UserFeedPage,
    feed_page,
    invite_answer,
    profile_answer,
    search_answer,
    token_feed_page,
    user_feed_page,
)
from shared.errors import BadRequest, Conflict, GatewayError, InvalidParam, NotFound
from shared.models import Account
from shared.resources import Resources
from shared.secrets import SecretUnreadable
from shared.sora import errors
from shared.sora.client import Credentials
from shared.timeutil import utcnow

log = logging.getLogger("api.queries")

MAX_LIMIT = 50
CUTS = ("nf2_latest", "nf2_top")
INTENTS = ("users", "cameo")
_MAX_TEXT = 512

Answer = TypeVar("Answer", bound=msgspec.Struct)
Fetch = Callable[[Account, Credentials], Awaitable[Answer]]


class NoAvailableAccount(GatewayError):
    status_code = 503
    error_type = "server_error"
    default_code = "no_available_account"


class UpstreamFailed(GatewayError):
    status_code = 502
    error_type = "server_error"
    default_code = "upstream_error"


# Query parameters: read as text so every bad value gets the same 400 invalid_value ---------------


def _limit(raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidParam(f"'limit' must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return value


def _token_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not row_id(value):
        raise InvalidParam("'token_id' must be a positive integer account id", param="token_id")
    return value


def _choice(raw: str | None, allowed: tuple[str, ...], default: str, name: str) -> str:
    if raw is None or not raw.strip():
        return default
    value = raw.strip()
    if value not in allowed:
        raise InvalidParam(f"'{name}' must be one of {', '.join(allowed)}", param=name)
    return value


def _text(raw: str | None, name: str, *, required: bool) -> str | None:
    value = (raw or "").strip()
    if not value:
        if required:
            raise InvalidParam(f"'{name}' is required", param=name, code="missing_required_parameter")
        return None
    if len(value) > _MAX_TEXT:
        raise InvalidParam(f"'{name}' is longer than {_MAX_TEXT} characters", param=name)
    if not value.isprintable():
        raise InvalidParam(f"'{name}' holds control characters", param=name)
    return value


# One cached, pooled upstream read -----------------------------------------------------------


def _cache_key(services: Resources, route: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(msgspec.json.encode(params, order="sorted")).hexdigest()[:40]
    return services.keys.query_cache(route, digest)


async def _cache_get(services: Resources, key: str, answer_type: type[Answer]) -> Answer | None:
    try:
        raw = await services.redis.get(key)
    except RedisError as exc:
        log.warning("query cache read failed: %s", type(exc).__name__)
        return None
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=answer_type)
    except msgspec.MsgspecError:
        return None  # written by another version of this answer; fetch a fresh one


async def _cache_put(services: Resources, key: str, answer: msgspec.Struct) -> None:
    try:
        await services.redis.set(
            key, msgspec.json.encode(answer), px=max(int(services.settings.query_cache_s * 1000), 1)
        )
    except RedisError as exc:
        log.warning("query cache write failed: %s", type(exc).__name__)


async def _account(services: Resources, token_id: int | None) -> tuple[Account, Credentials]:
    account = await services.pool.for_read(token_id)
    if account is None:
        raise NoAvailableAccount("No upstream account is available right now; please retry later.")
    try:
        return account, services.pool.credentials(account)
    except SecretUnreadable:
        if token_id is not None:
            raise Conflict(
                f"The tokens of account {token_id} cannot be read",
                param="token_id",
                code="account_unreadable",
            ) from None
        raise NoAvailableAccount("No upstream account is available right now; please retry later.") from None


async def cached_read(
    services: Resources,
    route: str,
    params: dict[str, Any],
    token_id: int | None,
    answer_type: type[Answer],
    fetch: Fetch[Answer],
    *,
    not_found: str,
) -> Answer:
    """The answer from the cache, or from the upstream with a pooled (or the given) account."""
    use_cache = services.settings.query_cache_s > 0
    key = _cache_key(services, route, {**params, "token_id": token_id})
    if use_cache and (hit := await _cache_get(services, key, answer_type)) is not None:
        return hit
    account, creds = await _account(services, token_id)
    try:
        answer = await fetch(account, creds)
    except errors.NotFoundUpstream:
        raise NotFound(not_found) from None
    except errors.BadUpstreamRequest as exc:
        log.info("%s: upstream refused the request from account %s: %r", route, account.id, exc)
        raise BadRequest("The upstream service refused these parameters", code="upstream_rejected") from None
    except errors.UpstreamError as exc:
        log.warning("%s: upstream error with account %s: %r", route, account.id, exc)
        raise UpstreamFailed(exc.public_message) from None
    if use_cache:
        await _cache_put(services, key, answer)
    return answer


async def account_stats(services: Resources) -> Stats:
    """Counts over the accounts table; the ``today_*`` columns count only on today's UTC date."""
    now = utcnow()
    same_day = Account.today_date == now.date()
    active = sa.and_(
        Account.enabled.is_(True),
        sa.or_(Account.expires_at.is_(None), Account.expires_at > now),
        sa.or_(Account.cooldown_until.is_(None), Account.cooldown_until <= now),
    )

    def total(column: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(column), 0)

    def today(column: Any) -> Any:
        return total(sa.case((same_day, column), else_=0))

    query = sa.select(
        sa.func.count(),
        total(sa.case((active, 1), else_=0)),
        today(Account.today_image_count),
        total(Account.image_count),
        today(Account.today_video_count),
        total(Account.video_count),
        today(Account.today_error_count),
        total(Account.error_count),
    ).select_from(Account)
    async with services.sessions() as session:
        row = (await session.execute(query)).one()
    return Stats(*(int(value) for value in row))


LimitParam = Annotated[str | None, QueryParameter(description=f"1 to {MAX_LIMIT}")]
TokenParam = Annotated[str | None, QueryParameter(description="the id of the pool account to use")]
CursorParam = Annotated[str | None, QueryParameter(description="the previous answer's cursor")]


class QueryController(Controller):
    before_request = client_auth
    tags = ["queries"]

    @get("/v1/stats", operation_id="getStats")
    async def stats(self, services: NamedDependency[Resources]) -> StatsAnswer:
        return StatsAnswer(stats=await account_stats(services))

    @get("/v1/feed", operation_id="getFeed")
    async def feed(
        self,
        services: NamedDependency[Resources],
        limit: LimitParam = None,
        cut: Annotated[str | None, QueryParameter(description="nf2_latest or nf2_top")] = None,
        cursor: CursorParam = None,
        token_id: TokenParam = None,
    ) -> FeedPage:
        size, chosen_cut = _limit(limit, 8), _choice(cut, CUTS, "nf2_latest", "cut")
        after, account_id = _text(cursor, "cursor", required=False), _token_id(token_id)

        async def fetch(_: Account, creds: Credentials) -> FeedPage:
            answer = await services.sora.feed(creds, cut=chosen_cut, limit=size, cursor=after)
            return feed_page(answer, cut=chosen_cut, limit=size)

        params = {"cut": chosen_cut, "limit": size, "cursor": after}
        return await cached_read(
            services, "feed", params, account_id, FeedPage, fetch, not_found="The feed was not found"
        )

    @get("/v1/profiles/{username:str}", operation_id="getProfile")
    async def profile(
        self, services: NamedDependency[Resources], username: FromPath[str], token_id: TokenParam = None
    ) -> ProfileAnswer:
        name = _text(username.removeprefix("@"), "username", required=True) or ""
        account_id = _token_id(token_id)

        async def fetch(_: Account, creds: Credentials) -> ProfileAnswer:
            return profile_answer(await services.sora.profile_by_username(creds, name))

        return await cached_read(
            services,
            "profile",
            {"username": name},
            account_id,
            ProfileAnswer,
            fetch,
            not_found=f"No user named '{name}'",
        )

    @get("/v1/users/{user_id:str}/feed", operation_id="getUserFeed")
    async def user_feed(
        self,
        services: NamedDependency[Resources],
        user_id: FromPath[str],
        limit: LimitParam = None,
        cursor: CursorParam = None,
        token_id: TokenParam = None,
    ) -> UserFeedPage:
        user = _text(user_id, "user_id", required=True) or ""
        size, after = _limit(limit, 8), _text(cursor, "cursor", required=False)
        account_id = _token_id(token_id)

        async def fetch(_: Account, creds: Credentials) -> UserFeedPage:
            answer = await services.sora.profile_feed(creds, user, limit=size, cursor=after)
            return user_feed_page(answer, user_id=user, limit=size)

        params = {"user_id": user, "limit": size, "cursor": after}
        return await cached_read(
            services, "user_feed", params, account_id, UserFeedPage, fetch, not_found=f"No user '{user}'"
        )

    @get("/v1/characters/search", operation_id="searchCharacters")
    async def search(
        self,
        services: NamedDependency[Resources],
        username: Annotated[str | None, QueryParameter(description="what to look for")] = None,
        intent: Annotated[str | None, QueryParameter(description="users or cameo")] = None,
        limit: LimitParam = None,
        token_id: TokenParam = None,
    ) -> SearchAnswer:
        query = _text(username, "username", required=True) or ""
        chosen_intent, size = _choice(intent, INTENTS, "users", "intent"), _limit(limit, 10)
        account_id = _token_id(token_id)

        async def fetch(_: Account, creds: Credentials) -> SearchAnswer:
            answer = await services.sora.search_mentions(creds, query, intent=chosen_intent, limit=size)
            return search_answer(answer, query=query, limit=size)

        params = {"username": query, "intent": chosen_intent, "limit": size}
        return await cached_read(
            services, "search", params, account_id, SearchAnswer, fetch, not_found="Nothing was found"
        )

    @get("/v1/invite-codes", operation_id="getInviteCode")
    async def invite_code(
        self, services: NamedDependency[Resources], token_id: TokenParam = None
    ) -> InviteAnswer:
        async def fetch(account: Account, creds: Credentials) -> InviteAnswer:
            return invite_answer(await services.sora.invite_mine(creds), email=account.email)

        return await cached_read(
            services,
            "invite",
            {},
            _token_id(token_id),
            InviteAnswer,
            fetch,
            not_found="The account has no invite code",
        )

    @get("/v1/tokens/{token_id:str}/profile-feed", operation_id="getTokenProfileFeed")
    async def token_feed(
        self,
        services: NamedDependency[Resources],
        token_id: FromPath[str],
        limit: LimitParam = None,
        cursor: CursorParam = None,
    ) -> TokenFeedPage:
        account_id = _token_id(token_id)
        if account_id is None:
            raise InvalidParam("'token_id' must be a positive integer account id", param="token_id")
        size, after = _limit(limit, 8), _text(cursor, "cursor", required=False)

        async def fetch(_: Account, creds: Credentials) -> TokenFeedPage:
            answer = await services.sora.profile_feed(creds, "me", limit=size, cursor=after)
            return token_feed_page(answer, token_id=account_id, limit=size)

        params = {"limit": size, "cursor": after}
        return await cached_read(
            services,
            "token_feed",
            params,
            account_id,
            TokenFeedPage,
            fetch,
            not_found="The account's posts were not found",
        )
