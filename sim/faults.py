"""Injected faults: what each one emits, and which requests it matches.

A fault matches by account and route (None means any), fires for the next ``count`` matching requests
(None: until deleted) and/or with a ``probability``. ``slow`` only delays and lets the request go on;
``create_then_*`` let a create call (``nf/create``, storyboard, extension, ``video_gen``, publish, the
character calls) really create the task, post, cameo or character before spoiling the answer.
``cameo_failed`` / ``cameo_stuck`` let a cameo start (``characters/upload``, ``characters/from-generation``)
succeed, but the cameo it starts then fails (``params.reason`` → ``status_message``) or never completes.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from litestar import Response

from sim import errors

ROUTES = (
    "me",
    "subscriptions",
    "nf_check",
    "nf_create",
    "pending",
    "drafts",
    "media",
    "session",
    "oauth_token",
    "sentinel",
    "video_gen",
    "recent_tasks",
    "uploads",
    "file_upload",
    "nf_create_storyboard",
    "extension",
    "post_create",
    "post_delete",
    "post_get",
    "parser",
    "characters_upload",
    "characters_from_generation",
    "cameo_status",
    "characters_finalize",
    "cameo_update",
    "character_delete",
    "invite_mine",
    "bootstrap",
    "invite_accept",
    "username_check",
    "username_set",
    "feed",
    "profile_feed",
    "profile_get",
    "search_mentions",
    "viewed",
    "post_like",
)
# The calls that make something upstream, where a lost or late answer leaves it behind.
CREATE_ROUTES = (
    "nf_create",
    "nf_create_storyboard",
    "extension",
    "video_gen",
    "post_create",
    "characters_upload",
    "characters_from_generation",
    "characters_finalize",
)
# The calls that start a cameo; the cameo_* faults mark the cameo they start.
CAMEO_START_ROUTES = ("characters_upload", "characters_from_generation")
# Faults that only make sense on some routes never match any other.
ROUTE_ONLY = {
    "create_then_500": CREATE_ROUTES,
    "create_then_slow": CREATE_ROUTES,
    "media_404": ("media",),
    "old_drafts_only": ("drafts",),
    "no_rotated_rt": ("oauth_token",),
    "cameo_failed": CAMEO_START_ROUTES,
    "cameo_stuck": CAMEO_START_ROUTES,
}
# Faults that change how the handler behaves instead of replacing its answer.
MODIFIERS = {"slow", "create_then_500", "create_then_slow", "no_rotated_rt", "cameo_failed", "cameo_stuck"}
FAULTS = (
    "http_500",
    "http_502",
    "http_503",
    "cloudflare",
    "token_invalidated",
    "unparseable_token",
    "sentinel_block",
    "low_trust",
    "too_many_concurrent_tasks",
    "heavy_load",
    "rate_limited",
    "unsupported_country_code",
    "phone_number_required",
    "slow",
    "create_then_500",
    "create_then_slow",
    "media_404",
    "old_drafts_only",
    "no_rotated_rt",
    "cameo_failed",
    "cameo_stuck",
)


@dataclass(kw_only=True)
class Fault:
    id: str
    name: str
    account: str | None = None
    route: str | None = None
    count: int | None = None
    probability: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, route: str, account_id: str | None, path: str) -> bool:
        if self.route is not None and self.route != route:
            return False
        if self.account is not None and self.account != account_id:
            return False
        only = ROUTE_ONLY.get(self.name)
        if only is not None and route not in only:
            return False
        # The page's drafts/v2 answering 404 while v1 still works is the "old drafts only" upstream.
        return not (self.name == "old_drafts_only" and not path.rstrip("/").endswith("/v2"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.name,
            "account": self.account,
            "route": self.route,
            "count": self.count,
            "probability": self.probability,
            "params": self.params,
            "hits": self.hits,
        }


def parse_fault(data: Any) -> Fault:
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    name = data.get("fault")
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    route = data.get("route")
    if route is not None and route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; known: {', '.join(ROUTES)}")
    account = data.get("account")
    if account is not None and not isinstance(account, str):
        raise ValueError("account must be an account id or null")
    count = data.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError("count must be a positive integer or null")
    probability = data.get("probability")
    if probability is not None and (
        not isinstance(probability, int | float) or isinstance(probability, bool) or not 0 <= probability <= 1
    ):
        raise ValueError("probability must be a number in [0, 1] or null")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    return Fault(
        id="flt_" + secrets.token_hex(6),
        name=name,
        account=account,
        route=route,
        count=count,
        probability=None if probability is None else float(probability),
        params=params,
    )


class FaultBook:
    """Not thread-safe by itself: the simulator calls it under its state lock."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.rng = random.Random()

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def remove(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def clear(self) -> None:
        self.faults.clear()

    def fire(self, route: str, account_id: str | None, path: str) -> list[Fault]:
        """The faults that fire for this request, in the order set; stops at the first one that answers."""
        fired: list[Fault] = []
        for fault in list(self.faults):
            if not fault.matches(route, account_id, path):
                continue
            if fault.probability is not None and self.rng.random() >= fault.probability:
                continue
            fault.hits += 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
            fired.append(fault)
            if fault.name not in MODIFIERS:
                break
        return fired


def _num(params: dict[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def delay_of(fault: Fault) -> float:
    return max(0.0, _num(fault.params, "delay_s", 5.0))


def respond(fault: Fault, *, max_concurrent: int, country: str | None) -> Response[Any]:
    """The answer a terminal fault gives instead of the real handler's."""
    p = fault.params
    name = fault.name
    status = int(_num(p, "status", 0)) or None
    if name in ("http_500", "http_502", "http_503"):
        return errors.server_error(int(name[-3:]))
    if name == "cloudflare":
        return errors.cloudflare_challenge(status or 403)
    if name == "token_invalidated":
        return errors.upstream_error(401, errors.MSG_INVALIDATED, "token_invalidated")
    if name == "unparseable_token":
        return errors.upstream_error(401, errors.MSG_UNPARSEABLE, None)
    if name == "sentinel_block":
        return errors.upstream_error(400, errors.MSG_SENTINEL, "sentinel_block")
    if name == "low_trust":
        return errors.upstream_error(400, errors.MSG_LOW_TRUST, None)
    if name == "too_many_concurrent_tasks":
        return errors.concurrency_error(int(_num(p, "num_tasks", max_concurrent)))
    if name == "heavy_load":
        return errors.upstream_error(status or 429, errors.MSG_HEAVY_LOAD, "heavy_load")
    if name == "rate_limited":
        headers = {"retry-after": str(int(_num(p, "retry_after", 0)))} if "retry_after" in p else None
        return errors.upstream_error(429, errors.MSG_RATE_LIMITED, None, headers=headers)
    if name == "unsupported_country_code":
        return errors.upstream_error(
            403,
            errors.MSG_COUNTRY,
            "unsupported_country_code",
            param=str(p.get("country") or country or "XX"),
        )
    if name == "phone_number_required":
        return errors.upstream_error(403, errors.MSG_PHONE, "phone_number_required")
    if name in ("media_404", "old_drafts_only"):
        return (
            errors.blob_not_found()
            if name == "media_404"
            else errors.upstream_error(404, "Not found", "not_found")
        )
    raise AssertionError(f"fault {name} is a modifier, not an answer")
