"""Getting a fresh access token for an account: session token first, then refresh token.

A refresh token works only with the OAuth client it was issued for, so each account keeps its
``client_id`` (and the redirect that goes with it), and a rotated refresh token is saved at once:
the old one stops working the moment the new one is issued.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from shared import jwtclaims
from shared.models import Account
from shared.pool import Pool
from shared.secrets import SecretBox, SecretUnreadable, token_hash
from shared.sora import errors
from shared.sora.client import SoraClient
from shared.timeutil import utcnow

IOS_REDIRECT = "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback"
ANDROID_REDIRECT = "com.openai.sora://auth.openai.com/android/com.openai.sora/callback"
# Client ids seen in the wild and the redirect each was registered with.
KNOWN_CLIENTS = {
    "app_LlGpXReQgckcGGUo2JrYvtJK": IOS_REDIRECT,  # ChatGPT iOS
    "app_WXrF1LSkiTtfYqiL6XtjygvX": IOS_REDIRECT,
    "app_OHnYmJt5u1XEdhDUx0ig1ziv": ANDROID_REDIRECT,  # Sora Android
    "app_1LOVEceTvrP2tHFDNnrPLQkJ": ANDROID_REDIRECT,
}


def redirect_for(client_id: str, given: str | None = None) -> str:
    return given or KNOWN_CLIENTS.get(client_id, IOS_REDIRECT)


class Exchanged(msgspec.Struct, frozen=True):
    access_token: str
    # Set when the refresh token rotated: it replaces the stored one.
    refresh_token: str | None = None
    email: str | None = None
    source: str = "st"  # "st" or "rt"


class RefreshFailed(Exception):
    """No fresh access token. ``transient``: the hosts failed, not the credentials (try again later)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _transient(exc: errors.UpstreamError) -> bool:
    return exc.status is None or exc.status >= 500 or exc.error_class in ("cloudflare", "rate_limited")


async def exchange(
    sora: SoraClient,
    *,
    session_token: str | None,
    refresh_token: str | None,
    client_id: str | None,
    redirect_uri: str | None = None,
    proxy_url: str | None = None,
) -> Exchanged:
    """An access token from the session token, else from the refresh token."""
    problems: list[str] = []
    transient = True
    if session_token:
        try:
            answer = await sora.session_access_token(session_token, proxy_url)
            token = answer.get("accessToken")
            if isinstance(token, str) and token:
                user = answer.get("user") if isinstance(answer.get("user"), dict) else {}
                email = user.get("email") if isinstance(user.get("email"), str) else None
                return Exchanged(access_token=token, email=email, source="st")
            problems.append("session: no accessToken in the answer")
            transient = False
        except errors.UpstreamError as exc:
            problems.append(f"session: {exc.error_class} ({exc})")
            transient = transient and _transient(exc)
    if refresh_token:
        if not client_id:
            problems.append("refresh token: no client_id is known for it")
            transient = False
        else:
            try:
                answer = await sora.oauth_refresh(
                    refresh_token, client_id, redirect_for(client_id, redirect_uri), proxy_url
                )
                token = answer.get("access_token")
                if isinstance(token, str) and token:
                    rotated = answer.get("refresh_token")
                    return Exchanged(
                        access_token=token,
                        refresh_token=rotated if isinstance(rotated, str) and rotated else None,
                        source="rt",
                    )
                problems.append("oauth: no access_token in the answer")
                transient = False
            except errors.UpstreamError as exc:
                problems.append(f"oauth: {exc.error_class} ({exc})")
                transient = transient and _transient(exc)
    if not problems:
        raise RefreshFailed("the account has neither a session token nor a refresh token", transient=False)
    raise RefreshFailed("; ".join(problems), transient=transient)


def sealed_token_fields(box: SecretBox, got: Exchanged) -> dict[str, Any]:
    """Column values for a new access token (and a rotated refresh token)."""
    values: dict[str, Any] = {
        "access_token_enc": box.seal(got.access_token),
        "token_hash": token_hash(got.access_token),
        "expires_at": jwtclaims.expiry(got.access_token),
    }
    if got.refresh_token:
        values["refresh_token_enc"] = box.seal(got.refresh_token)
    email = got.email or jwtclaims.email(got.access_token)
    if email:
        values["email"] = email
    return values


async def refresh_account(
    pool: Pool, box: SecretBox, sora: SoraClient, account: Account, *, retry_after_s: float = 300.0
) -> Account:
    """Exchanges the account's ST or RT for a new AT and stores it.

    Rejected credentials disable the account with reason ``expired``; a transient failure leaves it as
    it is and schedules another try. Raises ``RefreshFailed`` either way.
    """
    assert account.id is not None
    try:
        session_token = box.open_optional(account.session_token_enc)
        refresh_token = box.open_optional(account.refresh_token_enc)
    except SecretUnreadable as exc:
        await _store(pool, account.id, enabled=False, disabled_reason="secret_unreadable")
        raise RefreshFailed(str(exc), transient=False) from exc
    try:
        got = await exchange(
            sora,
            session_token=session_token,
            refresh_token=refresh_token,
            client_id=account.client_id,
            redirect_uri=account.redirect_uri,
            proxy_url=account.proxy_url,
        )
    except RefreshFailed as exc:
        values: dict[str, Any] = {
            "refresh_error": str(exc)[:500],
            "refresh_not_before": utcnow() + timedelta(seconds=retry_after_s),
        }
        if not exc.transient:
            values.update(enabled=False, disabled_reason="expired")
        await _store(pool, account.id, **values)
        raise
    values = sealed_token_fields(box, got)
    values.update(refreshed_at=utcnow(), refresh_error=None, refresh_not_before=None)
    if account.disabled_reason in ("expired", "token_invalid") or (
        account.cooldown_reason in ("token_invalid", "expired")
    ):
        # The new token undoes what the old one's failure did.
        values.update(enabled=True, disabled_reason=None, consecutive_errors=0)
    return await _store(pool, account.id, **values)


async def _store(pool: Pool, account_id: int, **values: Any) -> Account:
    values.setdefault("updated_at", utcnow())
    account = await pool.store(account_id, **values)
    if account is None:
        raise RefreshFailed("the account was deleted meanwhile", transient=False)
    return account
