"""Response builders for every error the simulator emits.

Backend, session and OAuth errors all use the upstream body ``{"error": {message, type, param, code}}``
(plus ``details`` inside ``error`` where upstream adds it); only the Cloudflare page and the blob-store 404
are not JSON, as upstream.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Response
from litestar.enums import MediaType

MSG_INVALIDATED = "Your authentication token has been invalidated. Please try signing in again."
MSG_EXPIRED = "Your authentication token has expired. Please try signing in again."
MSG_UNPARSEABLE = "Could not parse your authentication token. Please try signing in again."
MSG_SENTINEL = (
    "Hmmm something didn't look right with your request. Please try again later or visit "
    "https://help.openai.com if this issue persists."
)
MSG_LOW_TRUST = "Unable to process request"
MSG_HEAVY_LOAD = "We're under heavy load, please try again later."
MSG_RATE_LIMITED = "Too many requests. Please slow down and try again later."
MSG_COUNTRY = "Sora is not available in your country or region."
MSG_PHONE = "Please verify your phone number to continue."
MSG_QUOTA = "You've reached your video generation limit. Please try again later."
MSG_SERVER = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=data, status_code=status, media_type=MediaType.JSON, headers=headers)


def upstream_error(
    status: int,
    message: str,
    code: str | None = None,
    *,
    param: str | None = None,
    type_: str = "invalid_request_error",
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    if details is not None:
        error["details"] = details
    return json_response({"error": error}, status, headers)


def concurrency_error(num_tasks: int) -> Response[Any]:
    return upstream_error(
        429,
        f"You already have {num_tasks} generations in progress",
        "too_many_concurrent_tasks",
        details={"num_tasks": num_tasks},
    )


def server_error(status: int) -> Response[Any]:
    return upstream_error(status, MSG_SERVER.get(status, "Server error"), None, type_="server_error")


_CF_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">sora.chatgpt.com</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript></div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "sora.chatgpt.com",cType: 'managed',
cRay: '%(ray)s',cH: '%(h)s',cUPMDTk: "/?__cf_chl_tk=%(tk)s",cFPWv: 'g',cITimeS: '1700000000'};
}());</script></body></html>
"""


def cloudflare_challenge(status: int = 403) -> Response[Any]:
    ray = secrets.token_hex(8) + "-SJC"
    fill = {"ray": ray.split("-")[0], "h": secrets.token_urlsafe(24), "tk": secrets.token_urlsafe(16)}
    body = _CF_PAGE % fill
    return Response(
        content=body.encode(),
        status_code=status,
        media_type="text/html; charset=UTF-8",
        headers={
            "cf-mitigated": "challenge",
            "cf-ray": ray,
            "server": "cloudflare",
            "cache-control": "private, max-age=0, no-store, no-cache, must-revalidate",
        },
    )


def blob_not_found() -> Response[Any]:
    # Media lives on blob storage upstream, which answers a missing blob with this XML, not the JSON shape.
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code>'
        "<Message>The specified blob does not exist.</Message></Error>"
    )
    return Response(content=body.encode(), status_code=404, media_type="application/xml")
