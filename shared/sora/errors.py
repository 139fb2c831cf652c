"""Every upstream answer that is not a success, as one typed error per condition.

The classes carry how the job engine reacts (upstream reference, section 6), so the
reactions live here and nowhere else: the engine reads ``reaction``, ``account_fault``
and the hints below instead of matching status codes or message text itself.

:func:`classify` reads the HTTP status, ``error.code`` and headers first and falls back
to the message text only when those say nothing specific; it never raises. Conditions
that are not HTTP answers (content violations, failed or lost tasks) are constructed
directly by the job code.
"""

from __future__ import annotations

import email.utils
import enum
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import msgspec


class Reaction(enum.StrEnum):
    RETRY = "retry"
    """Again after a capped backoff with jitter: on the same account when the request may have been acted
    on (``maybe_processed``: its pending list is read before another create), else on any account."""
    ROTATE = "rotate"
    """Re-run on another account, excluding this one."""
    COOLDOWN = "cooldown"
    """The account (or its egress) is unusable until a time; the job moves to another account."""
    DISABLE = "disable"
    """The account needs a token refresh or an operator; the job moves to another account."""
    FAIL = "fail"
    """Terminal for the job."""


class UpstreamError(Exception):
    reaction: ClassVar[Reaction] = Reaction.FAIL
    account_fault: ClassVar[bool] = False
    """Counts toward the account's consecutive-error limit."""
    error_class: ClassVar[str] = "upstream_error"
    """Stable name recorded with each attempt."""
    public_message: ClassVar[str] = "The upstream service returned an error."
    """Safe to show to our clients: free of the phrases that make NewAPI/OneAPI disable a channel."""
    public_code: ClassVar[str] = "upstream_error"
    default_wait: ClassVar[float | None] = None
    """Backoff (RETRY) or cooldown length (COOLDOWN) in seconds when upstream gave no retry-after."""
    egress_fault: ClassVar[bool] = False
    """The network route (proxy or IP) is the problem, not the account's credentials."""
    account_reason: ClassVar[str | None] = None
    """Reason stored on the account when it is cooled down, disabled or blocked."""
    refresh_first: ClassVar[bool] = False
    """Try a token refresh (ST, then RT) before disabling."""
    recheck_quota: ClassVar[bool] = False
    """Read ``nf/check`` to tell a short rate limit from spent video allowance."""
    maybe_processed: bool = False
    """Upstream may have acted on the request anyway: look for the task before re-sending a create."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        maybe_processed: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.retry_after = retry_after
        if maybe_processed is not None:
            self.maybe_processed = maybe_processed

    @property
    def wait(self) -> float | None:
        return self.retry_after if self.retry_after is not None else self.default_wait

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by Exception's default pickling (Celery pickles errors).
        return (type(self), (self.message,), self.__dict__)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"param={self.param!r}, message={self.message!r})"
        )


# -- Network route ---------------------------------------------------------------------


class CloudflareChallenge(UpstreamError):
    """The egress IP got a browser challenge; the account is innocent: never counted, cooled or disabled.

    The job backs off and tries again (on whichever account, so another egress when accounts have their
    own proxies); when its attempts run out it fails with its own code.
    """

    reaction = Reaction.RETRY
    error_class = "cloudflare"
    egress_fault = True
    default_wait = 15.0
    public_message = "The upstream's network edge kept challenging our requests; please retry later."
    public_code = "upstream_challenge"


class UnsupportedRegion(UpstreamError):
    """A property of the egress IP: the account (with its proxy) is disabled with reason ``region`` and the
    job moves on; it fails when no account is left. ``param`` is the country. Not counted as the account's
    fault: an operator gives it another proxy and enables it again."""

    reaction = Reaction.DISABLE
    error_class = "unsupported_region"
    egress_fault = True
    account_reason = "region"
    public_message = "The request cannot be served from the current upstream region."
    public_code = "unsupported_region"


# -- Credentials -----------------------------------------------------------------------


class TokenInvalid(UpstreamError):
    reaction = Reaction.DISABLE
    account_fault = True
    error_class = "token_invalid"
    refresh_first = True
    account_reason = "token_invalid"
    public_message = "No upstream account could serve the request; please retry later."
    public_code = "upstream_unavailable"


class TokenExpired(UpstreamError):
    reaction = Reaction.DISABLE
    account_fault = True
    error_class = "token_expired"
    refresh_first = True
    account_reason = "expired"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


class UnauthorizedUpstream(UpstreamError):
    """A 401 that names no known cause; treated like an invalid token."""

    reaction = Reaction.DISABLE
    account_fault = True
    error_class = "unauthorized"
    refresh_first = True
    account_reason = "token_invalid"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


class NotActivated(UpstreamError):
    """Sora 2 not activated (401 on ``/project_y/invite/mine``): call ``/m/bootstrap`` and retry once.

    Only the client knows which route answered, so it builds this one itself.
    """

    reaction = Reaction.RETRY
    error_class = "not_activated"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


class PhoneRequired(UpstreamError):
    reaction = Reaction.DISABLE
    account_fault = True
    error_class = "phone_required"
    account_reason = "phone_required"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


class AccountDeactivated(UpstreamError):
    reaction = Reaction.DISABLE
    account_fault = True
    error_class = "account_deactivated"
    account_reason = "deactivated"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


class AccessForbidden(UpstreamError):
    """A 403 that is neither a challenge nor a known account state; repeated ones reach the error limit."""

    reaction = Reaction.ROTATE
    account_fault = True
    error_class = "forbidden"
    public_message = TokenInvalid.public_message
    public_code = "upstream_unavailable"


# -- Load and limits -------------------------------------------------------------------


class ConcurrencyLimit(UpstreamError):
    """The account already runs its 3 videos (some not ours): nobody's fault, never counted. The slot is
    given back and the job tries again after ``default_wait`` on any account."""

    reaction = Reaction.RETRY
    error_class = "concurrency_limit"
    default_wait = 5.0
    public_message = "All upstream capacity is busy; please retry shortly."
    public_code = "rate_limited"


class RateLimitedUpstream(UpstreamError):
    reaction = Reaction.COOLDOWN
    error_class = "rate_limited"
    account_reason = "rate_limited"
    default_wait = 60.0
    recheck_quota = True
    public_message = ConcurrencyLimit.public_message
    public_code = "rate_limited"


class HeavyLoad(UpstreamError):
    reaction = Reaction.COOLDOWN
    error_class = "heavy_load"
    account_reason = "heavy_load"
    default_wait = 300.0
    public_message = "The upstream service is under heavy load; please retry later."
    public_code = "upstream_overloaded"


class QuotaExhausted(UpstreamError):
    """The account's video allowance is spent until its reset; never a permanent disable."""

    reaction = Reaction.COOLDOWN
    error_class = "quota_exhausted"
    account_reason = "quota"
    default_wait = 3600.0
    recheck_quota = True
    public_message = "No upstream capacity is left right now; please retry later."
    public_code = "capacity_exhausted"


# -- Request rejected ------------------------------------------------------------------


class SentinelBlock(UpstreamError):
    """The client drops the sentinel value, fetches a fresh one and retries the call once by itself.

    So the engine only sees a second block on the same call: it cools the account down for
    ``default_wait`` (reason ``sentinel``) and the job moves to another account.
    """

    reaction = Reaction.COOLDOWN
    error_class = "sentinel_block"
    account_reason = "sentinel"
    default_wait = 600.0
    public_message = "The upstream service rejected the request; please retry."
    public_code = "upstream_rejected"


class LowTrust(UpstreamError):
    """400 "Unable to process request": upstream does not trust this account enough."""

    reaction = Reaction.ROTATE
    account_fault = True
    error_class = "low_trust"
    public_message = SentinelBlock.public_message
    public_code = "upstream_rejected"


class BadUpstreamRequest(UpstreamError):
    reaction = Reaction.FAIL
    error_class = "bad_request"
    public_message = "The upstream service rejected the request."
    public_code = "upstream_rejected"


class NotFoundUpstream(UpstreamError):
    reaction = Reaction.FAIL
    error_class = "not_found"
    public_message = "The requested upstream item was not found."
    public_code = "not_found"


# -- Generation outcomes (built by the job code) ---------------------------------------


class ContentPolicy(UpstreamError):
    """A violation draft or a failed image task; ``message`` keeps upstream's reason for operators."""

    reaction = Reaction.FAIL
    error_class = "content_policy"
    public_message = "The prompt or input was rejected by the content filter"
    public_code = "content_filter"


class UpstreamTaskFailed(UpstreamError):
    reaction = Reaction.FAIL
    error_class = "task_failed"
    public_message = "The generation failed upstream."
    public_code = "generation_failed"


class GenerationTimeout(UpstreamError):
    """The generation budget ran out; the task id is kept for late reconciliation."""

    reaction = Reaction.FAIL
    error_class = "generation_timeout"
    public_message = "The generation did not finish in time."
    public_code = "generation_timeout"


class GenerationStuck(UpstreamError):
    """Progress stayed at 0 % too long after leaving the queue."""

    reaction = Reaction.ROTATE
    account_fault = True
    error_class = "generation_stuck"
    public_message = "The generation stalled upstream."
    public_code = "generation_failed"


class TaskLost(UpstreamError):
    """Absent from both pending and drafts past the grace period."""

    reaction = Reaction.FAIL
    error_class = "task_lost"
    public_message = "The generation was lost upstream."
    public_code = "generation_failed"


# -- Transient -------------------------------------------------------------------------


class ServerError(UpstreamError):
    reaction = Reaction.RETRY
    error_class = "server_error"
    default_wait = 2.0
    maybe_processed = True
    public_message = "The upstream service had a temporary error; please retry."
    public_code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    reaction = Reaction.RETRY
    error_class = "timeout"
    default_wait = 2.0
    maybe_processed = True
    public_message = "The upstream service did not answer in time; please retry."
    public_code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    reaction = Reaction.RETRY
    error_class = "unreachable"
    default_wait = 2.0
    maybe_processed = True
    public_message = "The upstream service could not be reached; please retry."
    public_code = "upstream_unavailable"


class UnexpectedResponse(UpstreamError):
    """An answer that is neither a success the caller understood nor a known error."""

    reaction = Reaction.RETRY
    error_class = "unexpected_response"
    default_wait = 2.0
    public_message = ServerError.public_message
    public_code = "upstream_error"


ALL_ERRORS: tuple[type[UpstreamError], ...] = (
    CloudflareChallenge,
    UnsupportedRegion,
    TokenInvalid,
    TokenExpired,
    UnauthorizedUpstream,
    NotActivated,
    PhoneRequired,
    AccountDeactivated,
    AccessForbidden,
    ConcurrencyLimit,
    RateLimitedUpstream,
    HeavyLoad,
    QuotaExhausted,
    SentinelBlock,
    LowTrust,
    BadUpstreamRequest,
    NotFoundUpstream,
    ContentPolicy,
    UpstreamTaskFailed,
    GenerationTimeout,
    GenerationStuck,
    TaskLost,
    ServerError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UnexpectedResponse,
)


# Phrases that make NewAPI and OneAPI disable a channel (API contract §1): never in a message we answer.
CHANNEL_KILLING_PHRASES = (
    "credit",
    "balance",
    "quota",
    "permission denied",
    "violation of our policies",
    "organization has been disabled",
    "api key not valid",
    "api key expired",
    "your access was terminated",
)


def public_reason(reason: object, fallback: str) -> str:
    """Upstream's own words (a task's failure reason) fit to show our clients, else ``fallback``."""
    if not isinstance(reason, str):
        return fallback
    text = _WHITESPACE.sub(" ", reason).strip()[:_MESSAGE_LIMIT]
    lowered = text.lower()
    if not text or any(phrase in lowered for phrase in CHANNEL_KILLING_PHRASES):
        return fallback
    return text


# -- Classification --------------------------------------------------------------------

_CODES: dict[str, type[UpstreamError]] = {
    "token_invalidated": TokenInvalid,
    "token_expired": TokenExpired,
    "too_many_concurrent_tasks": ConcurrencyLimit,
    "heavy_load": HeavyLoad,
    "sentinel_block": SentinelBlock,
    "unsupported_country_code": UnsupportedRegion,
    "unsupported_country": UnsupportedRegion,
    "phone_number_required": PhoneRequired,
    "account_deactivated": AccountDeactivated,
    "rate_limit_reached": QuotaExhausted,
    "insufficient_quota": QuotaExhausted,
    "quota_exceeded": QuotaExhausted,
    # The original gateway expected this name for the challenge; harmless to honour.
    "cf_shield_429": CloudflareChallenge,
}

_ANY: frozenset[int] = frozenset()
_CLIENT_ERRORS = frozenset(range(400, 500))
# (pattern on the lower-cased message, class, statuses it applies to; empty = any error status).
# Order matters: the first match wins.
_TEXT_RULES: tuple[tuple[re.Pattern[str], type[UpstreamError], frozenset[int]], ...] = (
    (re.compile(r"heavy load"), HeavyLoad, _ANY),
    (
        re.compile(
            r"access was terminated|account (?:has been |was )?(?:deactivated|disabled|suspended|banned)"
        ),
        AccountDeactivated,
        frozenset({401, 403}),
    ),
    (re.compile(r"could not parse your authentication token|invalidated"), TokenInvalid, frozenset({401})),
    (re.compile(r"expired"), TokenExpired, frozenset({401})),
    (re.compile(r"generations? in progress|too many concurrent"), ConcurrencyLimit, frozenset({400, 429})),
    (
        re.compile(
            r"\bquota\b|out of (?:video )?generations|no (?:more )?(?:video )?generations (?:left|remaining)"
            r"|(?:daily|video|generation) limit"
        ),
        QuotaExhausted,
        frozenset({400, 403, 429}),
    ),
    (re.compile(r"sentinel|didn.t look right"), SentinelBlock, frozenset({400, 403})),
    (re.compile(r"unable to process request"), LowTrust, frozenset({400})),
    (re.compile(r"phone (?:number )?(?:verification|required|is required)"), PhoneRequired, _CLIENT_ERRORS),
    (
        re.compile(r"unsupported[ _]country|not (?:yet )?available in your (?:country|region)"),
        UnsupportedRegion,
        _CLIENT_ERRORS,
    ),
)

_CLOUDFLARE_MARKERS = (
    "_cf_chl_opt",
    "challenge-platform",
    "just a moment...",
    "just a moment…",
    "cf-browser-verification",
    "attention required! | cloudflare",
)
_TEXT_LIMIT = 65536
_MESSAGE_LIMIT = 300
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


class _Body(msgspec.Struct):
    text: str
    is_json: bool
    is_html: bool
    code: str | None = None
    message: str | None = None
    param: str | None = None
    num_tasks: bool = False
    quota_reached: bool = False
    resets_in: float | None = None


def classify(status: int, headers: Mapping[str, str] | None, body: bytes | str | None) -> UpstreamError:
    """The typed error for one upstream answer; never raises, whatever the body holds."""
    h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    parsed = _read_body(body, h)
    retry_after = _retry_after(h)

    cls = _choose(status, h, parsed)
    if cls is QuotaExhausted and retry_after is None:
        retry_after = parsed.resets_in
    if cls is CloudflareChallenge:
        ray = h.get("cf-ray")
        message = f"Cloudflare challenge (HTTP {status}{', cf-ray ' + ray if ray else ''})"
    else:
        message = parsed.message or _excerpt(parsed) or f"HTTP {status}"
    return cls(message, status=status, code=parsed.code, param=parsed.param, retry_after=retry_after)


def classify_response(response: httpx.Response) -> UpstreamError:
    try:
        content = response.content
    except httpx.ResponseNotRead:
        content = b""
    return classify(response.status_code, response.headers, content)


def classify_transport(exc: BaseException) -> UpstreamError:
    """A transport failure; ``maybe_processed`` is False only when the request surely never left."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    never_sent = isinstance(
        exc,
        httpx.ConnectError
        | httpx.ConnectTimeout
        | httpx.PoolTimeout
        | httpx.ProxyError
        | httpx.UnsupportedProtocol
        | httpx.LocalProtocolError,
    )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return UpstreamTimeout(message, maybe_processed=not never_sent)
    return UpstreamUnreachable(message, maybe_processed=not never_sent)


def _choose(status: int, h: Mapping[str, str], parsed: _Body) -> type[UpstreamError]:
    if _is_cloudflare(status, h, parsed):
        return CloudflareChallenge
    if parsed.code is not None and parsed.code.lower() in _CODES:
        return _CODES[parsed.code.lower()]
    if parsed.num_tasks and 400 <= status < 500:
        return ConcurrencyLimit
    if parsed.quota_reached:
        return QuotaExhausted
    if status < 400:
        return UnexpectedResponse
    text = (parsed.message or ("" if parsed.is_json else parsed.text)).lower()
    for pattern, cls, statuses in _TEXT_RULES:
        if (not statuses or status in statuses) and pattern.search(text):
            return cls
    return _by_status(status)


def _by_status(status: int) -> type[UpstreamError]:
    if status == 401:
        return UnauthorizedUpstream
    if status == 403:
        return AccessForbidden
    if status == 404:
        return NotFoundUpstream
    if status == 408:
        return UpstreamTimeout
    if status == 429:
        return RateLimitedUpstream
    if status >= 500:
        return ServerError
    return BadUpstreamRequest


def _is_cloudflare(status: int, h: Mapping[str, str], parsed: _Body) -> bool:
    if h.get("cf-mitigated", "").strip().lower() == "challenge":
        return True
    if parsed.is_json or not parsed.is_html:
        return False
    lowered = parsed.text.lower()
    if any(marker in lowered for marker in _CLOUDFLARE_MARKERS):
        return True
    # Cloudflare's own block and rate-limit pages come without the challenge markers.
    return status in (403, 429) and (h.get("server", "").lower() == "cloudflare" or "cf-ray" in h)


def _read_body(body: bytes | str | None, h: Mapping[str, str]) -> _Body:
    if body is None:
        text = ""
    elif isinstance(body, bytes | bytearray | memoryview):
        text = bytes(body[:_TEXT_LIMIT]).decode("utf-8", errors="replace")
    else:
        text = str(body)[:_TEXT_LIMIT]
    stripped = text.lstrip()
    content_type = h.get("content-type", "").lower()
    is_html = "html" in content_type or stripped[:15].lower().startswith(("<!doctype html", "<html"))
    doc: Any = None
    if stripped[:1] in ("{", "["):
        try:
            doc = msgspec.json.decode(stripped)
        except Exception:
            # Truncated or malformed JSON is read as text below.
            doc = None
    parsed = _Body(text=text, is_json=doc is not None, is_html=is_html and doc is None)
    if isinstance(doc, dict):
        _read_fields(doc, parsed)
    return parsed


def _read_fields(doc: dict[str, Any], parsed: _Body) -> None:
    error = doc.get("error")
    detail = doc.get("detail")
    if isinstance(error, dict):
        source = error
    elif isinstance(detail, dict):
        source = detail
    else:
        source = doc
    parsed.code = _scalar(source.get("code"))
    if parsed.code is None or parsed.code.lower() not in _CODES:
        # Some answers put the condition in ``type`` and a generic class in ``code``.
        kind = _scalar(source.get("type"))
        if kind is not None and kind.lower() in _CODES:
            parsed.code = kind
    parsed.param = _scalar(source.get("param"))
    parsed.message = next(
        (m for m in (_scalar(source.get("message")), _scalar(error), _scalar(detail)) if m),
        None,
    )
    details = source.get("details", doc.get("details"))
    parsed.num_tasks = isinstance(details, dict) and details.get("num_tasks") is not None
    if isinstance(details, dict):
        resets = details.get("access_resets_in_seconds")
        if isinstance(resets, int | float) and not isinstance(resets, bool) and resets >= 0:
            parsed.resets_in = float(resets)

    balance = doc.get("rate_limit_and_credit_balance", source.get("rate_limit_and_credit_balance"))
    for holder in (balance, source, doc):
        if not isinstance(holder, dict):
            continue
        remaining = holder.get("estimated_num_videos_remaining")
        if holder.get("rate_limit_reached") is True or (
            isinstance(remaining, int) and not isinstance(remaining, bool) and remaining <= 0
        ):
            parsed.quota_reached = True
            resets = holder.get("access_resets_in_seconds")
            if isinstance(resets, int | float) and not isinstance(resets, bool) and resets >= 0:
                parsed.resets_in = float(resets)
            break


def _scalar(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _excerpt(parsed: _Body) -> str:
    text = parsed.text
    if parsed.is_html:
        m = _TITLE.search(text)
        text = m.group(1) if m else re.sub(r"<[^>]*>", " ", text)
    return _WHITESPACE.sub(" ", text).strip()[:_MESSAGE_LIMIT]


def _retry_after(h: Mapping[str, str]) -> float | None:
    ms = _number(h.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    value = h.get("retry-after", "").strip()
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
