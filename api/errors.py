"""The one place that turns exceptions into the OpenAI error body."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.errors import GatewayError, RateLimited

log = logging.getLogger("api")

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _json(status: int, message: str, error_type: str, code: str | None, param: str | None = None) -> Response:
    return Response(error_body(message, error_type, code, param), status_code=status)


def gateway_error(_: Request, exc: GatewayError) -> Response:
    response = _json(exc.status_code, exc.message, exc.error_type, exc.code, exc.param)
    if isinstance(exc, RateLimited):
        response.headers["retry-after"] = str(exc.retry_after)
    return response


def http_error(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s: %s", status, exc.detail)
        return _json(
            status, "The server had an error while processing the request", "server_error", "internal_error"
        )
    message = exc.detail or "Bad request"
    if isinstance(exc, ValidationException) and exc.extra:
        details = "; ".join(
            f"{item.get('key') or item.get('source') or 'body'}: {item.get('message')}"
            for item in exc.extra
            if isinstance(item, dict)
        )
        message = f"{message}: {details}" if details else message
    error_type = _TYPES.get(status, "invalid_request_error")
    response = _json(status, message, error_type, _CODES.get(status, "invalid_request"))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def storage_unavailable(request: Request, exc: Exception) -> Response:
    """Our own database or Redis is down: always transient, never the client's fault.

    Polls get a non-JSON body: NewAPI leaves a task alone on a non-JSON answer and
    fails it on any JSON error.
    """
    log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"retry-after": "5"}
    if request.method == "GET":
        return Response(
            "Service temporarily unavailable, retry shortly\n",
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            media_type="text/plain",
            headers=headers,
        )
    response = _json(
        503, "Service temporarily unavailable, retry shortly", "server_error", "service_unavailable"
    )
    response.headers.update(headers)
    return response


def _unstorable(exc: Exception) -> str | None:
    """The SQLSTATE when Postgres refused a value as data (class 22: a NUL character in text, a number out
    of its column's range, …) or as too large to index (54000). Such a value came from the request, and
    the transaction is rolled back: the client's mistake, never a server fault."""
    state = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    return state if isinstance(state, str) and (state.startswith("22") or state == "54000") else None


def _database_away(exc: DBAPIError) -> bool:
    """Postgres is shutting down, starting up, out of connections or gone (SQLSTATE classes 08 and 57P,
    and 53300). SQLAlchemy raises such a refusal at connect time as a bare DBAPIError."""
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(state, str) and (state.startswith(("08", "57P")) or state == "53300")


def unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or _database_away(exc)):
        return storage_unavailable(request, exc)
    # Routes check their input first (api.bounds); these two are the net for what slips through.
    if state := _unstorable(exc):
        log.warning(
            "refused a value the database cannot store on %s %s (%s)", request.method, request.url.path, state
        )
        return _json(
            400,
            "The request holds a value that cannot be stored (a NUL character, or a number out of range)",
            "invalid_request_error",
            "invalid_value",
        )
    if isinstance(exc, RecursionError) and "deserializ" in str(exc):
        return _json(400, "The request body is nested too deeply", "invalid_request_error", "invalid_request")
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "The server had an error while processing the request",
        "server_error",
        "internal_error",
    )


EXCEPTION_HANDLERS = {
    GatewayError: gateway_error,
    HTTPException: http_error,
    OperationalError: storage_unavailable,
    PoolTimeoutError: storage_unavailable,
    ConnectionRefusedError: storage_unavailable,
    OSError: storage_unavailable,
    RedisConnectionError: storage_unavailable,
    RedisTimeoutError: storage_unavailable,
    Exception: unexpected,
}
