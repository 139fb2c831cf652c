from __future__ import annotations

import json
import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from shared.sora import errors as e
from shared.sora.errors import Reaction, classify, classify_response, classify_transport
from tests.strict import CHANNEL_KILLING_PHRASES

JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html; charset=UTF-8"}

CLOUDFLARE_PAGE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head><body><div class="main-wrapper" role="main">
<noscript><div>Enable JavaScript and cookies to continue</div></noscript></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "sora.chatgpt.com",cType: 'managed',
cRay: '8f1c2b3a4d5e6f70'};var a = document.createElement('script');
a.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f1c2b3a4d5e6f70';
document.getElementsByTagName('head')[0].appendChild(a);}());</script></body></html>"""
CLOUDFLARE_HEADERS = {
    "Content-Type": "text/html; charset=UTF-8",
    "cf-mitigated": "challenge",
    "CF-RAY": "8f1c2b3a4d5e6f70-FRA",
    "Server": "cloudflare",
}
CLOUDFLARE_BLOCK_PAGE = (
    b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    b"<body><h1>Sorry, you have been blocked</h1></body></html>"
)
NGINX_502 = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def err(message=None, code=None, param=None, type_="invalid_request_error", **extra) -> bytes:
    body = {"message": message, "type": type_, "param": param, "code": code, **extra}
    return json.dumps({"error": body}).encode()


# name, status, headers, body, expected class, expected code, expected param
TABLE = [
    # Cloudflare
    ("cf 403 challenge", 403, CLOUDFLARE_HEADERS, CLOUDFLARE_PAGE, e.CloudflareChallenge, None, None),
    ("cf 429 challenge", 429, CLOUDFLARE_HEADERS, CLOUDFLARE_PAGE, e.CloudflareChallenge, None, None),
    ("cf markers without header", 403, HTML, CLOUDFLARE_PAGE, e.CloudflareChallenge, None, None),
    ("cf markers without content type", 429, {}, CLOUDFLARE_PAGE, e.CloudflareChallenge, None, None),
    ("cf header on empty body", 403, {"cf-mitigated": "challenge"}, b"", e.CloudflareChallenge, None, None),
    (
        "cf block page",
        403,
        {**HTML, "server": "cloudflare", "cf-ray": "1"},
        CLOUDFLARE_BLOCK_PAGE,
        e.CloudflareChallenge,
        None,
        None,
    ),
    (
        "cf rate limit page",
        429,
        {**HTML, "cf-ray": "1"},
        b"<html>rate limited</html>",
        e.CloudflareChallenge,
        None,
        None,
    ),
    (
        "legacy cf code",
        429,
        JSON,
        err("blocked", "cf_shield_429"),
        e.CloudflareChallenge,
        "cf_shield_429",
        None,
    ),
    # Tokens
    (
        "token invalidated",
        401,
        JSON,
        err(
            "Your authentication token has been invalidated. Please try signing in again.",
            "token_invalidated",
        ),
        e.TokenInvalid,
        "token_invalidated",
        None,
    ),
    (
        "token unparseable",
        401,
        JSON,
        err("Could not parse your authentication token. Please try signing in again."),
        e.TokenInvalid,
        None,
        None,
    ),
    (
        "invalidated text only",
        401,
        JSON,
        err("Your authentication token has been invalidated."),
        e.TokenInvalid,
        None,
        None,
    ),
    (
        "token expired",
        401,
        JSON,
        err("Token expired", "token_expired"),
        e.TokenExpired,
        "token_expired",
        None,
    ),
    ("expired text only", 401, JSON, err("Your session has expired"), e.TokenExpired, None, None),
    ("other 401", 401, JSON, err("Unauthorized"), e.UnauthorizedUpstream, None, None),
    ("401 empty", 401, {}, b"", e.UnauthorizedUpstream, None, None),
    # Concurrency and rate limits
    (
        "429 concurrency code",
        429,
        JSON,
        err(
            "You already have 3 generations in progress",
            "too_many_concurrent_tasks",
            details={"num_tasks": 3},
        ),
        e.ConcurrencyLimit,
        "too_many_concurrent_tasks",
        None,
    ),
    (
        "429 num_tasks only",
        429,
        JSON,
        err("Please wait", None, details={"num_tasks": 3}),
        e.ConcurrencyLimit,
        None,
        None,
    ),
    (
        "429 in progress text",
        429,
        JSON,
        err("You already have 3 generations in progress. Please wait for one to finish."),
        e.ConcurrencyLimit,
        None,
        None,
    ),
    (
        "429 plain rate limit",
        429,
        JSON,
        err("Too many requests, please slow down.", "rate_limit_exceeded"),
        e.RateLimitedUpstream,
        "rate_limit_exceeded",
        None,
    ),
    (
        "429 rate limit reached for requests",
        429,
        JSON,
        err("Rate limit reached for requests per min."),
        e.RateLimitedUpstream,
        None,
        None,
    ),
    (
        "429 text body",
        429,
        {"content-type": "text/plain"},
        b"Too Many Requests",
        e.RateLimitedUpstream,
        None,
        None,
    ),
    ("429 empty", 429, {}, b"", e.RateLimitedUpstream, None, None),
    # Heavy load, any status
    (
        "heavy load code 429",
        429,
        JSON,
        err("We're under heavy load, please try again later.", "heavy_load"),
        e.HeavyLoad,
        "heavy_load",
        None,
    ),
    ("heavy load code 503", 503, JSON, err("overloaded", "heavy_load"), e.HeavyLoad, "heavy_load", None),
    (
        "heavy load text 400",
        400,
        JSON,
        err("We're under heavy load, please try again later."),
        e.HeavyLoad,
        None,
        None,
    ),
    (
        "heavy load text 500",
        500,
        {"content-type": "text/plain"},
        b"We're under heavy load, please try again later.",
        e.HeavyLoad,
        None,
        None,
    ),
    ("heavy load in type", 429, JSON, err("busy", None, type_="heavy_load"), e.HeavyLoad, "heavy_load", None),
    # Quota
    (
        "quota code",
        429,
        JSON,
        err("You have reached your limit.", "rate_limit_reached"),
        e.QuotaExhausted,
        "rate_limit_reached",
        None,
    ),
    (
        "quota flag in body",
        429,
        JSON,
        json.dumps(
            {
                "error": {"message": "Limit reached", "code": None},
                "rate_limit_and_credit_balance": {
                    "estimated_num_videos_remaining": 0,
                    "rate_limit_reached": True,
                    "access_resets_in_seconds": 5400,
                },
            }
        ).encode(),
        e.QuotaExhausted,
        None,
        None,
    ),
    (
        "insufficient quota",
        429,
        JSON,
        err("You exceeded your current quota.", "insufficient_quota"),
        e.QuotaExhausted,
        "insufficient_quota",
        None,
    ),
    (
        "daily limit text",
        429,
        JSON,
        err("You've hit the daily limit for videos."),
        e.QuotaExhausted,
        None,
        None,
    ),
    # Request rejected
    (
        "sentinel code",
        400,
        JSON,
        err("Hmmm something didn't look right with your request. Please try again later.", "sentinel_block"),
        e.SentinelBlock,
        "sentinel_block",
        None,
    ),
    (
        "sentinel text",
        400,
        JSON,
        err("Hmmm something didn't look right with your request. Please try again later."),
        e.SentinelBlock,
        None,
        None,
    ),
    ("low trust", 400, JSON, err("Unable to process request"), e.LowTrust, None, None),
    ("low trust detail shape", 400, JSON, b'{"detail": "Unable to process request"}', e.LowTrust, None, None),
    (
        "region",
        403,
        JSON,
        err("Sora is not available in your country.", "unsupported_country_code", "CN"),
        e.UnsupportedRegion,
        "unsupported_country_code",
        "CN",
    ),
    (
        "region on 400",
        400,
        JSON,
        err("Country, region, or territory not supported", "unsupported_country_code", "RU"),
        e.UnsupportedRegion,
        "unsupported_country_code",
        "RU",
    ),
    (
        "phone",
        400,
        JSON,
        err("Phone verification is required.", "phone_number_required"),
        e.PhoneRequired,
        "phone_number_required",
        None,
    ),
    (
        "deactivated code",
        403,
        JSON,
        err("This account has been deactivated.", "account_deactivated"),
        e.AccountDeactivated,
        "account_deactivated",
        None,
    ),
    (
        "terminated text",
        403,
        JSON,
        err("Your access was terminated due to a breach of our terms."),
        e.AccountDeactivated,
        None,
        None,
    ),
    ("other 403", 403, JSON, err("Forbidden"), e.AccessForbidden, None, None),
    ("403 plain html", 403, HTML, b"<html><title>Forbidden</title></html>", e.AccessForbidden, None, None),
    ("404", 404, JSON, err("Not found", "not_found"), e.NotFoundUpstream, "not_found", None),
    ("404 html", 404, HTML, b"<html><title>404</title></html>", e.NotFoundUpstream, None, None),
    (
        "other 400",
        400,
        JSON,
        err("Invalid value for n_frames", "invalid_value", "n_frames"),
        e.BadUpstreamRequest,
        "invalid_value",
        "n_frames",
    ),
    (
        "422",
        422,
        JSON,
        b'{"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}',
        e.BadUpstreamRequest,
        None,
        None,
    ),
    ("413", 413, {}, b"", e.BadUpstreamRequest, None, None),
    # Server and odd answers
    ("500", 500, JSON, err("Internal server error", "internal_error"), e.ServerError, "internal_error", None),
    ("502 nginx html", 502, HTML, NGINX_502, e.ServerError, None, None),
    ("503 empty", 503, {}, b"", e.ServerError, None, None),
    ("504 text", 504, {"content-type": "text/plain"}, b"upstream timed out", e.ServerError, None, None),
    (
        "520 cloudflare origin error",
        520,
        {**HTML, "server": "cloudflare"},
        b"<html>520</html>",
        e.ServerError,
        None,
        None,
    ),
    ("408", 408, {}, b"", e.UpstreamTimeout, None, None),
    ("200 without error", 200, JSON, b'{"ok": true}', e.UnexpectedResponse, None, None),
    ("302 redirect", 302, {"location": "/login"}, b"", e.UnexpectedResponse, None, None),
    ("200 with heavy load code", 200, JSON, err("busy", "heavy_load"), e.HeavyLoad, "heavy_load", None),
    # Bodies that are not the error shape
    ("json list", 400, JSON, b"[1, 2, 3]", e.BadUpstreamRequest, None, None),
    ("json string", 500, JSON, b'"boom"', e.ServerError, None, None),
    ("json null", 429, JSON, b"null", e.RateLimitedUpstream, None, None),
    ("truncated json", 400, JSON, b'{"error": {"message": "Unable to pro', e.BadUpstreamRequest, None, None),
    ("binary garbage", 500, {}, bytes(range(256)), e.ServerError, None, None),
    ("error as string", 400, JSON, b'{"error": "Unable to process request"}', e.LowTrust, None, None),
    ("error as list", 400, JSON, b'{"error": ["x"]}', e.BadUpstreamRequest, None, None),
    (
        "numeric code",
        400,
        JSON,
        b'{"error": {"message": "bad", "code": 1234}}',
        e.BadUpstreamRequest,
        "1234",
        None,
    ),
    (
        "flat message/code",
        429,
        JSON,
        b'{"message": "slow down", "code": "heavy_load"}',
        e.HeavyLoad,
        "heavy_load",
        None,
    ),
    # Codes win over text; JSON text never looks like a Cloudflare page.
    (
        "code beats text",
        429,
        JSON,
        err("We're under heavy load", "too_many_concurrent_tasks"),
        e.ConcurrencyLimit,
        "too_many_concurrent_tasks",
        None,
    ),
    (
        "sentinel code beats low trust text",
        400,
        JSON,
        err("Unable to process request", "sentinel_block"),
        e.SentinelBlock,
        "sentinel_block",
        None,
    ),
    ("json just a moment", 403, JSON, err("Just a moment..."), e.AccessForbidden, None, None),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls", "code", "param"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_classify(status, headers, body, cls, code, param):
    error = classify(status, headers, body)
    assert type(error) is cls
    assert (error.status, error.code, error.param) == (status, code, param)
    assert error.message


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls"),
    [(row[1], row[2], row[3], row[4]) for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_classify_http_response_objects(status, headers, body, cls):
    response = httpx.Response(status, headers=headers, content=body)
    assert type(classify_response(response)) is cls


def test_classify_accepts_str_and_none_bodies_and_no_headers():
    assert type(classify(401, None, "Could not parse your authentication token")) is e.TokenInvalid
    assert type(classify(500, None, None)) is e.ServerError


def test_unread_streamed_response_is_still_classified():
    response = httpx.Response(503, stream=httpx.ByteStream(b"later"))
    assert type(classify_response(response)) is e.ServerError


def test_upstream_message_is_kept():
    error = classify(401, JSON, err("Your authentication token has been invalidated.", "token_invalidated"))
    assert error.message == "Your authentication token has been invalidated."


def test_html_bodies_give_a_short_message():
    cf = classify(403, CLOUDFLARE_HEADERS, CLOUDFLARE_PAGE)
    assert cf.message == "Cloudflare challenge (HTTP 403, cf-ray 8f1c2b3a4d5e6f70-FRA)"
    nginx = classify(502, HTML, NGINX_502)
    assert nginx.message == "502 Bad Gateway"
    long_page = classify(500, HTML, b"<html><body>" + b"x " * 10000 + b"</body></html>")
    assert len(long_page.message) <= 300


def test_quota_cooldown_comes_from_the_body_when_no_header():
    body = json.dumps(
        {"rate_limit_and_credit_balance": {"rate_limit_reached": True, "access_resets_in_seconds": 5400}}
    ).encode()
    assert classify(429, JSON, body).retry_after == 5400.0
    assert classify(429, {**JSON, "retry-after": "30"}, body).retry_after == 30.0


def test_quota_reset_is_read_from_the_error_details():
    # The simulator's create-time refusal (the real one was never captured).
    body = json.dumps(
        {
            "error": {
                "message": "You've reached your video generation limit. Please try again later.",
                "code": "rate_limit_reached",
                "details": {"access_resets_in_seconds": 600},
            }
        }
    ).encode()
    error = classify(429, JSON, body)
    assert type(error) is e.QuotaExhausted and error.wait == 600.0


def test_public_reason_keeps_upstream_words_unless_they_would_disable_a_channel():
    assert e.public_reason("Video generation failed. Please try again.", "x") == (
        "Video generation failed. Please try again."
    )
    assert e.public_reason("You have no credits left", "fallback") == "fallback"
    assert e.public_reason("Over QUOTA", "fallback") == "fallback"
    assert e.public_reason(None, "fallback") == "fallback"
    assert e.public_reason("  ", "fallback") == "fallback"
    assert len(e.public_reason("y" * 5000, "fallback")) == 300
    assert set(e.CHANNEL_KILLING_PHRASES) == set(CHANNEL_KILLING_PHRASES)  # the contract's list, in full


def test_remaining_zero_is_quota():
    body = json.dumps(
        {"error": {"message": "x"}, "rate_limit_and_credit_balance": {"estimated_num_videos_remaining": 0}}
    ).encode()
    assert type(classify(400, JSON, body)) is e.QuotaExhausted


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "30"}, 30.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
        ({"retry-after": format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)}, 0.0),
    ],
)
def test_retry_after(headers, expected):
    assert classify(429, headers, b"").retry_after == expected


def test_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=120)
    value = classify(429, {"retry-after": format_datetime(when, usegmt=True)}, b"").retry_after
    assert value is not None
    assert 100 <= value <= 121


def test_retry_after_in_httpx_headers():
    response = httpx.Response(429, headers={"Retry-After": "12"}, content=b"")
    assert classify_response(response).retry_after == 12.0


def test_wait_prefers_retry_after_over_the_default():
    assert classify(429, {}, b"").wait == e.RateLimitedUpstream.default_wait
    assert classify(429, {"retry-after": "3"}, b"").wait == 3.0
    assert classify(400, {}, b"").wait is None


@pytest.mark.parametrize("status", [200, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503, 599, 0, 999])
def test_classify_never_raises_on_odd_bodies(status):
    rng = random.Random(status)
    bodies: list[bytes | str | None] = [
        None,
        b"",
        "",
        b"   ",
        b"{",
        b"[",
        b"[]",
        b"{}",
        b"0",
        b"true",
        b'{"error": null}',
        b'{"error": {"code": {"nested": 1}, "message": ["a"], "details": [1]}}',
        b'{"error": {"details": "x"}, "rate_limit_and_credit_balance": [1]}',
        b'{"rate_limit_and_credit_balance": {"rate_limit_reached": true, "access_resets_in_seconds": "x"}}',
        b'{"detail": {"code": "heavy_load"}}',
        b"[" * 10000,
        b"\x00\xff\xfe<html",
        "<html>\u2603 just a moment</html>",
        bytes(rng.randrange(256) for _ in range(2000)),
        b"x" * 200_000,
    ]
    header_sets = [{}, HTML, JSON, {"retry-after": "Wed, 99 Foo"}, {"cf-mitigated": ""}]
    for body in bodies:
        for headers in header_sets:
            error = classify(status, headers, body)
            assert isinstance(error, e.UpstreamError)
            assert isinstance(error.message, str)


def test_detail_object_shape_is_read():
    error = classify(429, JSON, b'{"detail": {"code": "heavy_load", "message": "busy"}}')
    assert type(error) is e.HeavyLoad
    assert error.message == "busy"


# ---------------------------------------------------------------------------------------
# Transport errors

REQUEST = httpx.Request("POST", "https://sora.chatgpt.com/backend/nf/create")


@pytest.mark.parametrize(
    ("exc", "cls", "maybe_processed"),
    [
        (httpx.ReadTimeout("read timed out", request=REQUEST), e.UpstreamTimeout, True),
        (httpx.WriteTimeout("write timed out", request=REQUEST), e.UpstreamTimeout, True),
        (httpx.ConnectTimeout("connect timed out", request=REQUEST), e.UpstreamTimeout, False),
        (httpx.PoolTimeout("pool", request=REQUEST), e.UpstreamTimeout, False),
        (httpx.ConnectError("refused", request=REQUEST), e.UpstreamUnreachable, False),
        (httpx.ProxyError("proxy down", request=REQUEST), e.UpstreamUnreachable, False),
        (httpx.RemoteProtocolError("server disconnected", request=REQUEST), e.UpstreamUnreachable, True),
        (httpx.ReadError("reset", request=REQUEST), e.UpstreamUnreachable, True),
        (TimeoutError(), e.UpstreamTimeout, True),
        (ConnectionResetError("reset"), e.UpstreamUnreachable, True),
    ],
)
def test_classify_transport(exc, cls, maybe_processed):
    error = classify_transport(exc)
    assert type(error) is cls
    assert error.reaction is Reaction.RETRY
    assert error.maybe_processed is maybe_processed
    assert type(exc).__name__ in error.message


# ---------------------------------------------------------------------------------------
# What each class tells the engine

# class, reaction, account_fault, error_class
REACTIONS = [
    (e.CloudflareChallenge, Reaction.RETRY, False, "cloudflare"),
    (e.UnsupportedRegion, Reaction.DISABLE, False, "unsupported_region"),
    (e.TokenInvalid, Reaction.DISABLE, True, "token_invalid"),
    (e.TokenExpired, Reaction.DISABLE, True, "token_expired"),
    (e.UnauthorizedUpstream, Reaction.DISABLE, True, "unauthorized"),
    (e.NotActivated, Reaction.RETRY, False, "not_activated"),
    (e.PhoneRequired, Reaction.DISABLE, True, "phone_required"),
    (e.AccountDeactivated, Reaction.DISABLE, True, "account_deactivated"),
    (e.AccessForbidden, Reaction.ROTATE, True, "forbidden"),
    (e.ConcurrencyLimit, Reaction.RETRY, False, "concurrency_limit"),
    (e.RateLimitedUpstream, Reaction.COOLDOWN, False, "rate_limited"),
    (e.HeavyLoad, Reaction.COOLDOWN, False, "heavy_load"),
    (e.QuotaExhausted, Reaction.COOLDOWN, False, "quota_exhausted"),
    (e.SentinelBlock, Reaction.COOLDOWN, False, "sentinel_block"),
    (e.LowTrust, Reaction.ROTATE, True, "low_trust"),
    (e.BadUpstreamRequest, Reaction.FAIL, False, "bad_request"),
    (e.NotFoundUpstream, Reaction.FAIL, False, "not_found"),
    (e.ContentPolicy, Reaction.FAIL, False, "content_policy"),
    (e.UpstreamTaskFailed, Reaction.FAIL, False, "task_failed"),
    (e.GenerationTimeout, Reaction.FAIL, False, "generation_timeout"),
    (e.GenerationStuck, Reaction.ROTATE, True, "generation_stuck"),
    (e.TaskLost, Reaction.FAIL, False, "task_lost"),
    (e.ServerError, Reaction.RETRY, False, "server_error"),
    (e.UpstreamTimeout, Reaction.RETRY, False, "timeout"),
    (e.UpstreamUnreachable, Reaction.RETRY, False, "unreachable"),
    (e.UnexpectedResponse, Reaction.RETRY, False, "unexpected_response"),
]


@pytest.mark.parametrize(("cls", "reaction", "account_fault", "error_class"), REACTIONS)
def test_reactions(cls, reaction, account_fault, error_class):
    assert (cls.reaction, cls.account_fault, cls.error_class) == (reaction, account_fault, error_class)
    assert issubclass(cls, e.UpstreamError)


def test_every_class_is_listed_once_with_a_unique_error_class():
    assert set(e.ALL_ERRORS) == {row[0] for row in REACTIONS}
    assert len({cls.error_class for cls in e.ALL_ERRORS}) == len(e.ALL_ERRORS)


@pytest.mark.parametrize("cls", e.ALL_ERRORS, ids=lambda c: c.__name__)
def test_public_messages_are_safe(cls):
    text = f"{cls.public_message} {cls.public_code}".lower()
    assert cls.public_message
    assert cls.public_code
    assert not [phrase for phrase in CHANNEL_KILLING_PHRASES if phrase in text]


def test_content_policy_public_shape():
    error = e.ContentPolicy(
        "This content may violate our guardrails concerning similarity to third-party content."
    )
    assert error.public_message == "The prompt or input was rejected by the content filter"
    assert error.public_code == "content_filter"
    assert "guardrails" in error.message


def test_account_hints():
    assert e.CloudflareChallenge.egress_fault and e.UnsupportedRegion.egress_fault
    assert not e.TokenInvalid.egress_fault
    assert e.TokenInvalid.refresh_first and e.TokenExpired.refresh_first
    assert e.TokenExpired.account_reason == "expired"
    assert e.QuotaExhausted.account_reason == "quota"
    assert e.PhoneRequired.account_reason == "phone_required"
    assert e.UnsupportedRegion.account_reason == "region"
    assert e.RateLimitedUpstream.recheck_quota and e.QuotaExhausted.recheck_quota
    assert e.ConcurrencyLimit.default_wait == 5.0
    assert e.ServerError.maybe_processed and not e.BadUpstreamRequest.maybe_processed


def test_errors_survive_pickling():
    original = classify(403, JSON, err("no", "unsupported_country_code", "CN", retry_after=None))
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is e.UnsupportedRegion
    assert (copy.status, copy.code, copy.param, copy.message) == (403, "unsupported_country_code", "CN", "no")
    timeout = pickle.loads(pickle.dumps(classify_transport(httpx.ConnectTimeout("x"))))
    assert timeout.maybe_processed is False


def test_errors_are_raisable_and_readable():
    with pytest.raises(e.UpstreamError) as info:
        raise classify(
            429, JSON, err("You already have 3 generations in progress", "too_many_concurrent_tasks")
        )
    assert str(info.value) == "You already have 3 generations in progress"
    assert "ConcurrencyLimit" in repr(info.value)
