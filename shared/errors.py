"""One exception hierarchy for the whole gateway.

Domain code raises these; the API renders them as the OpenAI error body
(``{"error": {"message", "type", "param", "code"}}``) in one handler.
Messages must never contain the phrases that make NewAPI/OneAPI disable a
channel (see the API contract, section 1).
"""

from __future__ import annotations


class GatewayError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param


class BadRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class InvalidParam(BadRequest):
    """A request field has a value we cannot serve."""

    default_code = "invalid_value"


class UnknownModel(BadRequest):
    default_code = "model_not_found"


class Unauthorized(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class Forbidden(GatewayError):
    status_code = 403
    error_type = "permission_error"
    default_code = "forbidden"


class NotFound(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class Conflict(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 5, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = min(max(retry_after, 1), 120)


class StorageUnavailable(GatewayError):
    """Our own database or Redis did not answer; always transient."""

    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"
