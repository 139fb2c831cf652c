"""Admin: the account pool (contract section 7).

Add, import, inspect, edit, test, refresh, enable, disable and delete accounts. Secrets are sealed at
rest and only ever shown masked; ``GET /api/tokens`` gives the state an operator needs at a glance.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import sqlalchemy as sa
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.exc import IntegrityError

from api.auth import admin_guard
from api.bounds import check_text, row_id
from shared import accounts, jwtclaims, refresh
from shared.errors import BadRequest, Conflict, GatewayError, InvalidParam, NotFound
from shared.models import Account, Job, JobState
from shared.resources import Resources
from shared.secrets import SecretUnreadable, mask, token_hash
from shared.sora.client import Credentials
from shared.timeutil import epoch, utcnow

KINDS = ("video", "image", "character")
LIMITS = {"video": (0, 3), "image": (0, 8), "character": (0, 3)}
MAX_IMPORT_LINES = 500
# remark, client_id, redirect_uri, proxy_url
MAX_TEXT = 2048
IMPORT_PARALLEL = 8


class AccountIn(msgspec.Struct, forbid_unknown_fields=False):
    token: str
    st: str | None = None
    rt: str | None = None
    client_id: str | None = None
    redirect_uri: str | None = None
    proxy_url: str | None = None
    video_concurrency: int = 3
    image_concurrency: int = 1
    character_concurrency: int = 1
    remark: str | None = None


class ImportIn(msgspec.Struct, forbid_unknown_fields=False):
    # One token per line (a string), or a list of them.
    tokens: str | list[str]
    # at | st | rt, or auto: a JWT is an access token, a five-part JWE a session token, anything else a
    # refresh token.
    kind: Literal["auto", "at", "st", "rt"] = "auto"
    # For refresh tokens: the OAuth client they were issued to (default DEFAULT_CLIENT_ID).
    client_id: str | None = None
    redirect_uri: str | None = None
    proxy_url: str | None = None
    video_concurrency: int = 3
    image_concurrency: int = 1
    character_concurrency: int = 1
    remark: str | None = None


class Slot(msgspec.Struct):
    in_use: int
    limit: int


class Today(msgspec.Struct):
    videos: int
    images: int
    errors: int


class AccountOut(msgspec.Struct):
    id: int
    # active | cooling_down | expired | disabled
    status: str
    # Why it is not active: disabled_reason, or the cooldown's reason.
    reason: str | None
    email: str | None
    name: str | None
    username: str | None
    remark: str | None
    token: str | None
    st: str | None
    rt: str | None
    client_id: str | None
    proxy_url: str | None
    plan_type: str | None
    plan_title: str | None
    subscription_end: int | None
    expires_at: int | None
    quota_remaining: int | None
    quota_resets_at: int | None
    slots: dict[str, Slot]
    video_concurrency: int
    image_concurrency: int
    character_concurrency: int
    enabled: bool
    disabled_reason: str | None
    cooldown_until: int | None
    cooldown_reason: str | None
    today: Today
    video_count: int
    image_count: int
    error_count: int
    consecutive_errors: int
    last_error: str | None
    last_error_at: int | None
    check_errors: dict[str, str]
    refreshed_at: int | None
    refresh_error: str | None
    last_used_at: int | None
    created_at: int
    object: Literal["account"] = "account"


class AccountList(msgspec.Struct):
    data: list[AccountOut]
    object: Literal["list"] = "list"


class ImportLine(msgspec.Struct):
    line: int
    kind: str
    # imported | updated | duplicate | failed
    result: str
    account_id: int | None = None
    email: str | None = None
    error: str | None = None


class ImportOut(msgspec.Struct):
    imported: int
    updated: int
    duplicates: int
    failed: int
    results: list[ImportLine]
    object: Literal["import"] = "import"


class Deleted(msgspec.Struct):
    id: int
    deleted: bool = True
    object: Literal["account"] = "account"


def _masked(services: Resources, sealed: str | None) -> str | None:
    try:
        return mask(services.box.open_optional(sealed))
    except SecretUnreadable:
        return "<unreadable: sealed with another ENCRYPTION_KEY>"


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


def status_of(account: Account, now: datetime | None = None) -> tuple[str, str | None]:
    now = now or utcnow()
    if not account.enabled:
        return "disabled", account.disabled_reason or "manual"
    if account.expires_at is not None and account.expires_at <= now:
        return "expired", "expired"
    if account.cooldown_until is not None and account.cooldown_until > now:
        return "cooling_down", account.cooldown_reason
    return "active", None


def account_out(account: Account, services: Resources, in_use: dict[str, int] | None = None) -> AccountOut:
    assert account.id is not None
    status, reason = status_of(account)
    today = utcnow().date()
    same_day = account.today_date == today
    in_use = in_use or {}
    return AccountOut(
        id=account.id,
        status=status,
        reason=reason,
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
        subscription_end=epoch(account.subscription_end),
        expires_at=epoch(account.expires_at),
        quota_remaining=account.quota_remaining,
        quota_resets_at=epoch(account.quota_resets_at),
        slots={kind: Slot(in_use=in_use.get(kind, 0), limit=_limit(account, kind)) for kind in KINDS},
        video_concurrency=account.video_concurrency,
        image_concurrency=account.image_concurrency,
        character_concurrency=account.character_concurrency,
        enabled=account.enabled,
        disabled_reason=account.disabled_reason,
        cooldown_until=epoch(account.cooldown_until),
        cooldown_reason=account.cooldown_reason,
        today=Today(
            videos=account.today_video_count if same_day else 0,
            images=account.today_image_count if same_day else 0,
            errors=account.today_error_count if same_day else 0,
        ),
        video_count=account.video_count,
        image_count=account.image_count,
        error_count=account.error_count,
        consecutive_errors=account.consecutive_errors,
        last_error=account.last_error,
        last_error_at=epoch(account.last_error_at),
        check_errors=account.check_errors,
        refreshed_at=epoch(account.refreshed_at),
        refresh_error=account.refresh_error,
        last_used_at=epoch(account.last_used_at),
        created_at=epoch(account.created_at) or 0,
    )


def _limit(account: Account, kind: str) -> int:
    return int(getattr(account, f"{kind}_concurrency"))


async def _slots_in_use(services: Resources, account_ids: list[int]) -> dict[int, dict[str, int]]:
    counts = await services.pool.leases.in_use_many([(a, kind) for a in account_ids for kind in KINDS])
    found: dict[int, dict[str, int]] = {}
    for (account_id, kind), count in counts.items():
        found.setdefault(account_id, {})[kind] = count
    return found


async def _out_one(services: Resources, account: Account) -> AccountOut:
    assert account.id is not None
    in_use = await _slots_in_use(services, [account.id])
    return account_out(account, services, in_use.get(account.id))


def _check_limits(values: dict[str, Any]) -> None:
    for kind, (low, high) in LIMITS.items():
        name = f"{kind}_concurrency"
        value = values.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            hint = " (the upstream runs at most 3 videos per account)" if kind == "video" else ""
            raise InvalidParam(f"'{name}' must be {low} to {high}{hint}", param=name)


def _check_proxy(url: Any) -> None:
    if url is None:
        return
    refused = InvalidParam("'proxy_url' must be an http(s) or socks5 URL", param="proxy_url")
    if not isinstance(url, str) or not url.isprintable() or " " in url:
        raise refused
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise refused from None
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise refused


def _check_texts(values: dict[str, Any]) -> None:
    """The free-text fields are stored as they are: bounded, and without NUL characters."""
    for name in _PATCHABLE_TEXT:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidParam(f"'{name}' must be a string or null", param=name)
        check_text(value, name)
        if value is not None and len(value) > MAX_TEXT:
            raise InvalidParam(f"'{name}' is longer than {MAX_TEXT} characters", param=name)


def _is_token_text(value: str) -> bool:
    # Tokens travel in Authorization headers and cookies: printable ASCII, no spaces.
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


def _check_secret(value: str | None, param: str) -> str | None:
    """A token as given (never echoed back in the refusal), stripped."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not _is_token_text(value):
        raise InvalidParam(f"'{param}' must be printable ASCII without spaces", param=param)
    return value


async def _get(services: Resources, account_id: int) -> Account:
    account = await services.pool.get(account_id) if row_id(account_id) else None
    if account is None:
        raise NotFound(f"No account with id {account_id}")
    return account


async def _store(services: Resources, account_id: int, **values: Any) -> Account:
    if not row_id(account_id):
        raise NotFound(f"No account with id {account_id}")
    values.setdefault("updated_at", utcnow())
    try:
        account = await services.pool.store(account_id, **values)
    except IntegrityError:
        raise _duplicate() from None
    if account is None:
        raise NotFound(f"No account with id {account_id}")
    return account


def _duplicate() -> Conflict:
    return Conflict("This access token is already in the pool", param="token", code="duplicate_token")


def _detect(token: str) -> str:
    parts = token.split(".")
    if len(parts) == 3 and jwtclaims.claims(token) is not None:
        return "at"
    if len(parts) == 5 and token.startswith("eyJ"):
        return "st"  # NextAuth session cookies are JWEs
    return "rt"


class _Line(msgspec.Struct):
    access_token: str
    session_token: str | None = None
    refresh_token: str | None = None
    email: str | None = None


async def _resolve(services: Resources, kind: str, token: str, data: ImportIn) -> _Line:
    """The access token a line stands for (exchanging session and refresh tokens first)."""
    if kind == "at":
        return _Line(access_token=token)
    client_id = data.client_id or services.settings.default_client_id
    got = await refresh.exchange(
        services.sora,
        session_token=token if kind == "st" else None,
        refresh_token=token if kind == "rt" else None,
        client_id=client_id,
        redirect_uri=data.redirect_uri,
        proxy_url=data.proxy_url,
    )
    if kind == "st":
        return _Line(access_token=got.access_token, session_token=token, email=got.email)
    # A rotated refresh token replaces the imported one at once: the old one no longer works.
    return _Line(access_token=got.access_token, refresh_token=got.refresh_token or token, email=got.email)


# The pool's operations: these routes and the console (api/routes/console.py) both call them.


async def add_account(services: Resources, data: AccountIn) -> AccountOut:
    token = _check_secret(data.token, "token")
    if not token:
        raise InvalidParam("'token' is required", param="token", code="missing_required_parameter")
    _check_limits(
        {f"{k}_concurrency": getattr(data, f"{k}_concurrency") for k in KINDS},
    )
    _check_texts({name: getattr(data, name) for name in _PATCHABLE_TEXT})
    _check_proxy(data.proxy_url)
    line = _Line(
        access_token=token,
        session_token=_check_secret(data.st, "st"),
        refresh_token=_check_secret(data.rt, "rt"),
    )
    account, created = await _save(services, line, data, merge_by_email=False)
    if not created:
        raise _duplicate()
    return await _out_one(services, account)


async def import_tokens(services: Resources, data: ImportIn) -> ImportOut:
    raw = data.tokens.splitlines() if isinstance(data.tokens, str) else list(data.tokens)
    lines = [(number, token.strip()) for number, token in enumerate(raw, 1) if token and token.strip()]
    if not lines:
        raise InvalidParam("'tokens' holds no token", param="tokens", code="missing_required_parameter")
    if len(lines) > MAX_IMPORT_LINES:
        raise InvalidParam(f"At most {MAX_IMPORT_LINES} tokens per import", param="tokens")
    _check_limits({f"{k}_concurrency": getattr(data, f"{k}_concurrency") for k in KINDS})
    _check_texts({name: getattr(data, name) for name in _PATCHABLE_TEXT})
    _check_proxy(data.proxy_url)
    gate = asyncio.Semaphore(IMPORT_PARALLEL)

    async def one(number: int, token: str) -> ImportLine:
        kind = _detect(token) if data.kind == "auto" else data.kind
        if not _is_token_text(token):
            error = "Not a token: it holds spaces, control or non-ASCII characters"
            return ImportLine(line=number, kind=kind, result="failed", error=error)
        async with gate:
            try:
                line = await _resolve(services, kind, token, data)
                account, created = await _save(services, line, data, merge_by_email=True)
            except refresh.RefreshFailed as exc:
                return ImportLine(line=number, kind=kind, result="failed", error=str(exc)[:300])
            except GatewayError as exc:
                result = "duplicate" if exc.code == "duplicate_token" else "failed"
                return ImportLine(line=number, kind=kind, result=result, error=exc.message)
        return ImportLine(
            line=number,
            kind=kind,
            result="imported" if created else "updated",
            account_id=account.id,
            email=account.email,
        )

    # A token repeated within the batch is a duplicate of its first line, not a race between the two.
    first_line: dict[str, int] = {}
    for number, token in lines:
        first_line.setdefault(token, number)

    async def each(number: int, token: str) -> ImportLine:
        if first_line[token] != number:
            kind = _detect(token) if data.kind == "auto" else data.kind
            return ImportLine(
                line=number,
                kind=kind,
                result="duplicate",
                error=f"Same token as line {first_line[token]}",
            )
        return await one(number, token)

    results = list(await asyncio.gather(*(each(number, token) for number, token in lines)))
    return ImportOut(
        imported=sum(1 for r in results if r.result == "imported"),
        updated=sum(1 for r in results if r.result == "updated"),
        duplicates=sum(1 for r in results if r.result == "duplicate"),
        failed=sum(1 for r in results if r.result == "failed"),
        results=results,
    )


async def _save(
    services: Resources, line: _Line, data: AccountIn | ImportIn, *, merge_by_email: bool
) -> tuple[Account, bool]:
    """Inserts the account, or (for imports) gives an account already in the pool its new tokens."""
    hashed = token_hash(line.access_token)
    async with services.sessions() as session:
        existing = await session.execute(sa.select(Account.id).where(Account.token_hash == hashed))
        if existing.first() is not None:
            raise _duplicate()
    creds = Credentials(
        account_id=0,
        access_token=line.access_token,
        session_token=line.session_token,
        proxy_url=data.proxy_url,
    )
    learned = await accounts.inspect(services.sora, creds)
    if line.email and not learned.get("email"):
        learned["email"] = line.email
    client_id = data.client_id or (services.settings.default_client_id if line.refresh_token else None)
    tokens: dict[str, Any] = {
        "token_hash": hashed,
        "access_token_enc": services.box.seal(line.access_token),
    }
    if line.session_token:
        tokens["session_token_enc"] = services.box.seal(line.session_token)
    if line.refresh_token:
        tokens.update(
            refresh_token_enc=services.box.seal(line.refresh_token),
            client_id=client_id,
            redirect_uri=data.redirect_uri,
        )
    email = learned.get("email")
    if merge_by_email and email:
        async with services.sessions() as session:
            same = await session.execute(sa.select(Account.id).where(Account.email == email).limit(1))
            row = same.first()
        if row is not None:
            return await _store(services, row[0], **tokens, **learned, refreshed_at=utcnow()), False
    account = Account(
        **tokens,
        proxy_url=data.proxy_url,
        remark=data.remark,
        video_concurrency=data.video_concurrency,
        image_concurrency=data.image_concurrency,
        character_concurrency=data.character_concurrency,
        **learned,
    )
    if not line.refresh_token and data.client_id:
        account.client_id = data.client_id
    async with services.sessions() as session:
        session.add(account)
        try:
            await session.commit()
        except IntegrityError:
            raise _duplicate() from None
        await session.refresh(account)
    return account, True


async def pool_accounts(services: Resources) -> AccountList:
    async with services.sessions() as session:
        result = await session.execute(sa.select(Account).order_by(Account.id))
        rows = list(result.scalars().all())
    in_use = await _slots_in_use(services, [a.id for a in rows if a.id is not None])
    return AccountList(data=[account_out(a, services, in_use.get(a.id or 0)) for a in rows])


async def account_detail(services: Resources, account_id: int) -> AccountOut:
    return await _out_one(services, await _get(services, account_id))


async def edit_account(services: Resources, account_id: int, data: dict[str, Any]) -> AccountOut:
    await _get(services, account_id)
    values = _patch_values(services, data)
    if not values:
        raise BadRequest("Nothing to change", code="missing_required_parameter")
    return await _out_one(services, await _store(services, account_id, **values))


async def remove_account(services: Resources, account_id: int, *, force: bool = False) -> Deleted:
    await _get(services, account_id)
    async with services.sessions() as session:
        busy = await session.execute(
            sa.select(sa.func.count())
            .select_from(Job)
            .where(Job.account_id == account_id, Job.state.in_(JobState.OPEN))
        )
        if int(busy.scalar_one()) and not force:
            raise Conflict(
                "The account has jobs in progress; disable it and wait, or delete with ?force=true",
                code="account_busy",
            )
        await session.execute(sa.delete(Account).where(Account.id == account_id))
        await session.commit()
    services.pool.forget_capable()
    return Deleted(id=account_id)


async def enable_account(services: Resources, account_id: int) -> AccountOut:
    account = await _store(
        services,
        account_id,
        enabled=True,
        disabled_reason=None,
        cooldown_until=None,
        cooldown_reason=None,
        consecutive_errors=0,
        refresh_error=None,
        refresh_not_before=None,
    )
    return await _out_one(services, account)


async def disable_account(services: Resources, account_id: int) -> AccountOut:
    account = await _store(services, account_id, enabled=False, disabled_reason="manual")
    return await _out_one(services, account)


async def check_account(services: Resources, account_id: int) -> AccountOut:
    """Reads /me, the subscription and nf/check again; a refused token disables the account."""
    account = await _get(services, account_id)
    try:
        creds = services.pool.credentials(account)
    except SecretUnreadable:
        account = await _store(services, account_id, enabled=False, disabled_reason="secret_unreadable")
        return await _out_one(services, account)
    learned = await accounts.inspect(services.sora, creds)
    refused = learned["check_errors"].get("me")
    if refused in ("token_expired", "token_invalid", "unauthorized"):
        learned.update(
            enabled=False, disabled_reason="expired" if refused == "token_expired" else "token_invalid"
        )
    return await _out_one(services, await _store(services, account_id, **learned))


async def refresh_now(services: Resources, account_id: int) -> AccountOut:
    """A new access token now, from the session token or else the refresh token."""
    account = await _get(services, account_id)
    try:
        account = await refresh.refresh_account(
            services.pool,
            services.box,
            services.sora,
            account,
            retry_after_s=services.settings.refresh_retry_s,
        )
    except refresh.RefreshFailed as exc:
        raise Conflict(f"The token could not be refreshed: {exc}", code="refresh_failed") from None
    return await _out_one(services, account)


class TokenController(Controller):
    path = "/api/tokens"
    guards = [admin_guard]
    tags = ["admin"]

    @post("", operation_id="addAccount", status_code=200)
    async def add(self, data: JSONBody[AccountIn], services: NamedDependency[Resources]) -> AccountOut:
        return await add_account(services, data)

    @post("/import", operation_id="importAccounts", status_code=200)
    async def import_accounts(
        self, data: JSONBody[ImportIn], services: NamedDependency[Resources]
    ) -> ImportOut:
        return await import_tokens(services, data)

    @get("", operation_id="listAccounts")
    async def list_accounts(self, services: NamedDependency[Resources]) -> AccountList:
        return await pool_accounts(services)

    @get("/{account_id:int}", operation_id="getAccount")
    async def get_account(
        self, account_id: FromPath[int], services: NamedDependency[Resources]
    ) -> AccountOut:
        return await account_detail(services, account_id)

    @patch("/{account_id:int}", operation_id="updateAccount")
    async def update_account(
        self,
        account_id: FromPath[int],
        data: JSONBody[dict[str, Any]],
        services: NamedDependency[Resources],
    ) -> AccountOut:
        return await edit_account(services, account_id, data)

    @delete("/{account_id:int}", operation_id="deleteAccount", status_code=200)
    async def delete_account(
        self,
        account_id: FromPath[int],
        services: NamedDependency[Resources],
        force: FromQuery[bool] = False,
    ) -> Deleted:
        return await remove_account(services, account_id, force=force)

    @post("/{account_id:int}/enable", operation_id="enableAccount", status_code=200)
    async def enable(self, account_id: FromPath[int], services: NamedDependency[Resources]) -> AccountOut:
        return await enable_account(services, account_id)

    @post("/{account_id:int}/disable", operation_id="disableAccount", status_code=200)
    async def disable(self, account_id: FromPath[int], services: NamedDependency[Resources]) -> AccountOut:
        return await disable_account(services, account_id)

    @post("/{account_id:int}/test", operation_id="testAccount", status_code=200)
    async def test_account(
        self, account_id: FromPath[int], services: NamedDependency[Resources]
    ) -> AccountOut:
        """Reads /me, the subscription and nf/check again; a refused token disables the account."""
        return await check_account(services, account_id)

    @post("/{account_id:int}/refresh", operation_id="refreshAccount", status_code=200)
    async def refresh_account(
        self, account_id: FromPath[int], services: NamedDependency[Resources]
    ) -> AccountOut:
        """A new access token now, from the session token or else the refresh token."""
        return await refresh_now(services, account_id)


_PATCHABLE_TEXT = ("remark", "client_id", "redirect_uri", "proxy_url")


def _patch_values(services: Resources, data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(
        set(data) - set(_PATCHABLE_TEXT) - {f"{k}_concurrency" for k in KINDS} - {"token", "st", "rt"}
    )
    if unknown:
        raise InvalidParam(
            f"Unknown or read-only field '{unknown[0]}'", param=unknown[0], code="unknown_parameter"
        )
    _check_limits(data)
    _check_texts(data)
    _check_proxy(data.get("proxy_url"))
    values: dict[str, Any] = {}
    for name in _PATCHABLE_TEXT:
        if name in data:
            values[name] = data[name] or None
    for kind in KINDS:
        name = f"{kind}_concurrency"
        if name in data:
            values[name] = data[name]
    if "token" in data:
        token = data["token"]
        if not isinstance(token, str) or not token.strip():
            raise InvalidParam("'token' must be a non-empty string", param="token")
        token = _check_secret(token, "token") or ""
        values.update(
            access_token_enc=services.box.seal(token),
            token_hash=token_hash(token),
            expires_at=jwtclaims.expiry(token),
        )
    for name, column in (("st", "session_token_enc"), ("rt", "refresh_token_enc")):
        if name in data:
            if data[name] is not None and not isinstance(data[name], str):
                raise InvalidParam(f"'{name}' must be a string or null", param=name)
            secret = _check_secret(data[name], name)
            values[column] = services.box.seal(secret) if secret else None
    return values
