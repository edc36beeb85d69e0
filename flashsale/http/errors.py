"""Every failure becomes `{"error": code, "message": text}` with the right status: domain refusals keep the
domain error's code, a user over the per-user rate is a 429 with `Retry-After`, a missing or saturated database
(or a full order queue, `queue_full`) is a 503 with `Retry-After` (`unavailable`: the database is
lost or no connection came free in time; `overloaded`: too many requests already wait for one), and anything
unexpected is a bare `{"error": "internal"}` (its details go to the log, with the request id, never to the
caller)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import psycopg
from psycopg_pool import PoolTimeout, TooManyRequests
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from flashsale.admission import QueueFull, RateLimited
from flashsale.contract import OVERLOADED, RETRY_AFTER_HEADER, UNAVAILABLE
from flashsale.db.guard import DatabaseDown
from flashsale.domain import DomainError
from flashsale.strategies import RedisDown, StrategyUnavailable

log = logging.getLogger("flashsale.http")


class ErrorResponse(BaseModel):
    """Every error: a stable machine-readable `error` code and a human `message`."""

    error: str = Field(examples=["sold_out"])
    message: str


# Domain codes whose status is not the default for refusals (409: the state of the sale, or of the idempotency key,
# forbids the order: `idempotency_key_reused` is a conflict with the order the key already has, not a malformed
# request, as the same request with a fresh key shows).
STATUS_BY_DOMAIN_CODE = {
    "sale_not_found": 404,
    "user_not_found": 404,
    "invalid_quantity": 422,
    "invalid_idempotency_key": 422,
}
CODE_BY_HTTP_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}
RETRY_AFTER_UNAVAILABLE_S = 1
INTERNAL_BODY = b'{"error":"internal","message":"internal server error"}'


class ApiError(Exception):
    """A refusal decided by the HTTP layer itself (bad input, unknown order, ...)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def to_api_error(exc: Exception) -> ApiError | None:
    """The answer for an exception the service knows how to explain, or None for an unexpected one."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError):
        return ApiError(STATUS_BY_DOMAIN_CODE.get(exc.code, 409), exc.code, str(exc))
    if isinstance(exc, RateLimited):
        return ApiError(429, exc.code, str(exc), {RETRY_AFTER_HEADER: retry_after(exc.retry_after_s)})
    if isinstance(exc, StrategyUnavailable):
        return ApiError(503, exc.code, str(exc), {RETRY_AFTER_HEADER: retry_after(exc.retry_after_s)})
    if isinstance(exc, DatabaseDown):
        return ApiError(503, exc.code, str(exc), {RETRY_AFTER_HEADER: retry_after(exc.retry_after_s)})
    if isinstance(exc, TooManyRequests):
        return ApiError(
            503,
            OVERLOADED,
            "too many requests are waiting for a database connection; retry later",
            {RETRY_AFTER_HEADER: retry_after(RETRY_AFTER_UNAVAILABLE_S)},
        )
    if isinstance(exc, PoolTimeout):
        return ApiError(
            503,
            UNAVAILABLE,
            "no database connection became free in time; retry later",
            {RETRY_AFTER_HEADER: retry_after(RETRY_AFTER_UNAVAILABLE_S)},
        )
    if isinstance(exc, psycopg.OperationalError):
        return ApiError(
            503,
            UNAVAILABLE,
            "the database is unavailable; retry later",
            {RETRY_AFTER_HEADER: retry_after(RETRY_AFTER_UNAVAILABLE_S)},
        )
    if isinstance(exc, HTTPException):
        code = CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, _http_message(exc), exc.headers)
    return None


def from_validation_error(exc: ValidationError) -> ApiError:
    """`invalid_quantity` when the quantity is the only problem, else `invalid_request` naming every problem."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if errors and all(e["type"] == "invalid_quantity" for e in errors):
        return ApiError(422, "invalid_quantity", errors[0]["msg"])
    problems = [f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return ApiError(422, "invalid_request", "; ".join(problems) + more)


def retry_after(seconds: float) -> str:
    """`Retry-After` takes whole seconds; round up so that a client never comes back too early."""
    return str(max(1, math.ceil(seconds)))


def error_response(error: ApiError) -> Response:
    body = ErrorResponse(error=error.code, message=error.message).model_dump_json()
    return Response(body, status_code=error.status, headers=error.headers, media_type="application/json")


def internal_error_response() -> Response:
    return Response(INTERNAL_BODY, status_code=500, media_type="application/json")


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every class in `HANDLED`."""
    error = to_api_error(exc)
    if error is None:  # pragma: no cover - only HANDLED classes are routed here
        raise exc
    # Fast refusals (circuit open, queue full) come by the thousand in an outage or an overload: the guard logs
    # the outage once and /metrics counts them, so they get no line each.
    if error.status >= 500 and not isinstance(exc, DatabaseDown | RedisDown | TooManyRequests | QueueFull):
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("answered 503", extra={"fields": {"error": error.code, "cause": f"{type(exc).__name__}: {cause}"}})
    return error_response(error)


HANDLED: tuple[type[Exception], ...] = (
    ApiError,
    DomainError,
    RateLimited,
    StrategyUnavailable,
    DatabaseDown,
    psycopg.OperationalError,
    HTTPException,
)


def _http_message(exc: HTTPException) -> str:
    if exc.status_code == 404:
        return "no such route"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method not allowed here; allowed: {allowed}" if allowed else "method not allowed here"
    return str(exc.detail)
