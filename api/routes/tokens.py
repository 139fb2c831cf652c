"""Admin: the account pool (contract section 7). This round: add and list."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.exc import IntegrityError

from api.auth import admin_guard
from api.schemas import AccountIn, AccountList, AccountOut
from shared import accounts
from shared.errors import Conflict, InvalidParam
from shared.models import Account
from shared.resources import Resources
from shared.secrets import SecretUnreadable, mask, token_hash
from shared.sora.client import Credentials
from shared.timeutil import epoch


def _masked(services: Resources, sealed: str | None) -> str | None:
    try:
        return mask(services.box.open_optional(sealed))
    except SecretUnreadable:
        return "<unreadable: sealed with another ENCRYPTION_KEY>"


def account_out(account: Account, services: Resources) -> AccountOut:
    assert account.id is not None
    return AccountOut(
        id=account.id,
        email=account.email,
        name=account.name,
        username=account.username,
        remark=account.remark,
        token=_masked(services, account.access_token_enc),
        st=_masked(services, account.session_token_enc),
        rt=_masked(services, account.refresh_token_enc),
        client_id=account.client_id,
        proxy_url=_mask_proxy(account.proxy_url),
        plan_type=account.plan_type,
        plan_title=account.plan_title,
        expires_at=epoch(account.expires_at),
        quota_remaining=account.quota_remaining,
        quota_resets_at=epoch(account.quota_resets_at),
        video_concurrency=account.video_concurrency,
        image_concurrency=account.image_concurrency,
        enabled=account.enabled,
        disabled_reason=account.disabled_reason,
        cooldown_until=epoch(account.cooldown_until),
        cooldown_reason=account.cooldown_reason,
        video_count=account.video_count,
        image_count=account.image_count,
        error_count=account.error_count,
        consecutive_errors=account.consecutive_errors,
        last_error=account.last_error,
        check_errors=account.check_errors,
        last_used_at=epoch(account.last_used_at),
        created_at=epoch(account.created_at) or 0,
    )


def _mask_proxy(url: str | None) -> str | None:
    """Proxies often carry a password; show where they go, not how to log in."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.username}:****@{host}{port}"


def _validate(data: AccountIn) -> str:
    token = data.token.strip()
    if not token:
        raise InvalidParam("'token' is required", param="token", code="missing_required_parameter")
    if data.video_concurrency < 1 or data.video_concurrency > 3:
        raise InvalidParam(
            "'video_concurrency' must be 1 to 3 (the upstream runs at most 3)", param="video_concurrency"
        )
    if data.image_concurrency < 0 or data.image_concurrency > 8:
        raise InvalidParam("'image_concurrency' must be 0 to 8", param="image_concurrency")
    if data.proxy_url and urlsplit(data.proxy_url).scheme not in ("http", "https", "socks5", "socks5h"):
        raise InvalidParam("'proxy_url' must be an http(s) or socks5 URL", param="proxy_url")
    return token


class TokenController(Controller):
    path = "/api/tokens"
    guards = [admin_guard]
    tags = ["admin"]

    @post("", operation_id="addAccount", status_code=200)
    async def add(self, data: JSONBody[AccountIn], services: NamedDependency[Resources]) -> AccountOut:
        token = _validate(data)
        hashed = token_hash(token)
        async with services.sessions() as session:
            existing = await session.execute(sa.select(Account.id).where(Account.token_hash == hashed))
            if existing.first() is not None:
                raise Conflict(
                    "This access token is already in the pool", param="token", code="duplicate_token"
                )
        creds = Credentials(account_id=0, access_token=token, session_token=data.st, proxy_url=data.proxy_url)
        learned = await accounts.inspect(services.sora, creds)
        account = Account(
            token_hash=hashed,
            access_token_enc=services.box.seal(token),
            session_token_enc=services.box.seal_optional(data.st),
            refresh_token_enc=services.box.seal_optional(data.rt),
            client_id=data.client_id,
            proxy_url=data.proxy_url,
            remark=data.remark,
            video_concurrency=data.video_concurrency,
            image_concurrency=data.image_concurrency,
            **learned,
        )
        async with services.sessions() as session:
            session.add(account)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    "This access token is already in the pool", param="token", code="duplicate_token"
                ) from None
            await session.refresh(account)
        return account_out(account, services)

    @get("", operation_id="listAccounts")
    async def list_accounts(self, services: NamedDependency[Resources]) -> AccountList:
        async with services.sessions() as session:
            result = await session.execute(sa.select(Account).order_by(Account.id))
            return AccountList(data=[account_out(a, services) for a in result.scalars().all()])
