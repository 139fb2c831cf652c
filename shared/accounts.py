"""Learning what an account is: identity from the JWT, plan and quota from the upstream."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared import jwtclaims
from shared.sora import errors
from shared.sora.client import Credentials, SoraClient
from shared.timeutil import from_epoch, utcnow


def _plan(subscriptions: dict[str, Any]) -> dict[str, Any]:
    data = subscriptions.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return {}
    first = data[0]
    plan = first.get("plan") if isinstance(first.get("plan"), dict) else {}
    end = first.get("end_ts")
    end_at = None
    if isinstance(end, int | float):
        end_at = from_epoch(end)
    elif isinstance(end, str):
        try:
            end_at = datetime.fromisoformat(end.replace("Z", "+00:00"))
        except ValueError:
            end_at = None
    return {"plan_type": plan.get("id"), "plan_title": plan.get("title"), "subscription_end": end_at}


def quota_fields(check: dict[str, Any]) -> dict[str, Any]:
    """Reads a ``rate_limit_and_credit_balance`` block (from nf/check or a create answer)."""
    block = check.get("rate_limit_and_credit_balance")
    if not isinstance(block, dict):
        return {}
    remaining = block.get("estimated_num_videos_remaining")
    resets = block.get("access_resets_in_seconds")
    fields: dict[str, Any] = {}
    if isinstance(remaining, int):
        fields["quota_remaining"] = 0 if block.get("rate_limit_reached") else remaining
    if isinstance(resets, int | float):
        fields["quota_resets_at"] = utcnow() + timedelta(seconds=float(resets))
    return fields


async def inspect(sora: SoraClient, creds: Credentials) -> dict[str, Any]:
    """Everything we can learn about an account; each failed call is recorded, never fatal."""
    fields: dict[str, Any] = {
        "expires_at": jwtclaims.expiry(creds.access_token),
        "email": jwtclaims.email(creds.access_token),
    }
    check_errors: dict[str, str] = {}

    try:
        me = await sora.me(creds)
        fields.update({k: me.get(k) for k in ("name", "username") if isinstance(me.get(k), str)})
        if isinstance(me.get("email"), str):
            fields["email"] = me["email"]
    except errors.UpstreamError as exc:
        check_errors["me"] = exc.error_class
    try:
        fields.update(_plan(await sora.subscriptions(creds)))
    except errors.UpstreamError as exc:
        check_errors["subscriptions"] = exc.error_class
    try:
        fields.update(quota_fields(await sora.nf_check(creds)))
    except errors.UpstreamError as exc:
        check_errors["nf_check"] = exc.error_class

    fields["check_errors"] = check_errors
    fields["last_checked_at"] = utcnow()
    return {k: v for k, v in fields.items() if v is not None or k == "check_errors"}
