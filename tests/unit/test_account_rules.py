"""Pure rules of the account pool: token kinds on import, OAuth redirects, the status an operator sees."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from api.routes.tokens import _detect, status_of
from shared.models import Account
from shared.refresh import ANDROID_REDIRECT, IOS_REDIRECT, redirect_for
from shared.timeutil import utcnow


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_import_tells_token_kinds_apart() -> None:
    jwt = f"{_b64({'alg': 'RS256'})}.{_b64({'exp': 1, 'sub': 'u'})}.signature"
    assert _detect(jwt) == "at"
    assert _detect("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ciphertext.tag") == "st"
    assert _detect("rt_abcdefghijklmnop") == "rt"
    assert _detect("not.a.jwt") == "rt"  # three parts but no JSON claims


def test_each_client_id_keeps_its_own_redirect() -> None:
    assert redirect_for("app_OHnYmJt5u1XEdhDUx0ig1ziv") == ANDROID_REDIRECT
    assert redirect_for("app_LlGpXReQgckcGGUo2JrYvtJK") == IOS_REDIRECT
    assert redirect_for("app_unknown") == IOS_REDIRECT
    assert redirect_for("app_unknown", "custom://callback") == "custom://callback"


def _account(**fields) -> Account:
    return Account(token_hash="h", access_token_enc="x", **fields)


def test_status_names_the_reason_an_account_is_not_taking_jobs() -> None:
    now = utcnow()
    assert status_of(_account(enabled=True), now) == ("active", None)
    assert status_of(_account(enabled=True, expires_at=None), now) == ("active", None)  # unknown expiry
    assert status_of(_account(enabled=False, disabled_reason="error_limit"), now) == (
        "disabled",
        "error_limit",
    )
    assert status_of(_account(enabled=False), now) == ("disabled", "manual")
    assert status_of(_account(enabled=True, expires_at=now - timedelta(seconds=1)), now) == (
        "expired",
        "expired",
    )
    cooling = _account(enabled=True, cooldown_until=now + timedelta(minutes=5), cooldown_reason="quota")
    assert status_of(cooling, now) == ("cooling_down", "quota")
    ended = _account(enabled=True, cooldown_until=now - timedelta(minutes=5), cooldown_reason="quota")
    assert status_of(ended, now) == ("active", None)
