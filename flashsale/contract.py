"""The wire contract between the order service and its clients, written once: the paths, the headers, how an order
is sent, and what every answer means to a client, as an outcome.

The service (`flashsale.http`) answers on these paths with these headers; the clients (the native http target,
`flashsale.load.targets`, and the Locust users, `flashsale.load.locust.orders`) send and read through them, and
the reports (the fault report, the figures) group outcomes by them. It imports nothing but the standard library,
so that the gevent side (Locust) and the asyncio side import it alike.

An outcome is what one request came to, as a client names it. Every outcome is in exactly one group:
- `SUCCESSES`: the order was taken: `created` (201), `replayed` (201 for a key that already had an order, which was
  returned) or `accepted` (202: stored pending, settled later; `serve --accept async`);
- `SALE_REFUSALS`: the rules of the sale said no (`sold_out`, ...), a final answer;
- `SERVICE_REFUSALS`: not now, come back after `Retry-After` (429 and 503): a strategy that could not take the order
  (`busy`, `rejected`), admission control (`rate_limited`, `queue_full`), or a service that could not reach its
  database (`unavailable`: the database is lost, or no connection came free in time; `overloaded`: too many requests
  already wait for one). `unavailable` is a refusal, not an error: the service chose to answer it, on purpose and
  with `Retry-After`, as the OpenAPI document says of every 503;
- errors: everything the contract does not foresee: no answer (the exception's class, `TimeoutError`), an answer
  outside the contract (`http_<status>`, or the class of the error reading a 201's body), a malformed request or
  a failure of the service (`http_422`, `http_500`), an accepted order whose end the client never saw (`gave_up`).
"""

from __future__ import annotations

import email.utils
import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

# --- paths --------------------------------------------------------------------------------------------------------
ORDERS_PATH = "/api/orders"  # POST: place an order
ORDER_PATH = "/api/orders/{order_id}"  # GET: one order
FLASH_SALE_PATH = "/api/flash-sales/{flash_sale_id}"  # GET: one sale
USER_IDS_PATH = "/api/users"  # GET ?limit=&offset=: one page of user ids, {"user_ids", "total", "limit", "offset"}
# The original's (FlashDeal) paths, so that its k6 scripts run unchanged.
ORIGINAL_ORDERS_PATH = "/orders"  # POST: as ORDERS_PATH
ORDER_STATUS_PATH = "/orders/{order_id}/status"  # GET: pending, completed or failed (with the reason)
ORIGINAL_USERS_PATH = "/users"  # GET: an array of users
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
OPENAPI_PATH = "/openapi.json"

# --- headers ------------------------------------------------------------------------------------------------------
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"  # request: place the order at most once for this key
REPLAYED_HEADER = "Idempotent-Replayed"  # answer: "true" on a 201 (or 202) that returns the key's earlier order
RETRY_AFTER_HEADER = "Retry-After"  # answer: whole seconds before trying again (429, 503): `retry_after_s`
REQUEST_ID_HEADER = "X-Request-ID"  # both ways: the request's id, in the service's log lines
JSON_CONTENT_TYPE = "application/json"  # of every body, both ways

# --- outcomes and their groups ------------------------------------------------------------------------------------
CREATED = "created"
REPLAYED = "replayed"
ACCEPTED = "accepted"
UNAVAILABLE = "unavailable"
OVERLOADED = "overloaded"
GAVE_UP = "gave_up"  # an accepted order still pending when its client stopped following it (`--poll-max`)
OTHER_ERROR = "other_error"  # every error class past the 255th distinct one (the records keep one byte)

SUCCESSES = (CREATED, REPLAYED, ACCEPTED)
SALE_REFUSALS = (
    "sold_out",
    "per_user_limit_exceeded",
    "sale_not_active",
    "not_found",
    "invalid",
    "idempotency_key_reused",
)
SERVICE_REFUSALS = ("busy", "rejected", UNAVAILABLE, OVERLOADED, "rate_limited", "queue_full")
ERRORS = (GAVE_UP, OTHER_ERROR)  # the errors with a name of their own; any name in no group is an error too
GROUPS = {"success": SUCCESSES, "sale refusal": SALE_REFUSALS, "service refusal": SERVICE_REFUSALS, "error": ERRORS}
# Answers that needed the database: an order taken, or refused by the sale's rules (a fault report's successes).
DECIDED = (*SUCCESSES, *SALE_REFUSALS)
# Every outcome with a name of its own but OTHER_ERROR, in the order of their ids in the records (kept stable).
KNOWN = (CREATED, *SALE_REFUSALS, *SERVICE_REFUSALS, REPLAYED, ACCEPTED, GAVE_UP)

_GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}


def group(name: str) -> str:
    """The group of the outcome `name`: `success`, `sale refusal`, `service refusal` or `error`."""
    return _GROUP_OF.get(name, "error")


def is_error(name: str) -> bool:
    """An outcome that is neither an order, a refusal by the sale nor a refusal for now."""
    return group(name) == "error"


# --- error codes --------------------------------------------------------------------------------------------------
# The code of every refusal the service answers (`{"error": code, "message": text}`), and the outcome it stands for:
# several codes share one (a client cannot act on a missing sale otherwise than on a missing user).
OUTCOME_BY_CODE = {
    "sold_out": "sold_out",
    "per_user_limit_exceeded": "per_user_limit_exceeded",
    "sale_not_active": "sale_not_active",
    "sale_not_found": "not_found",
    "user_not_found": "not_found",
    "not_found": "not_found",  # a path the service does not have: it shares the refusal's name, as it always did
    "invalid_quantity": "invalid",
    "invalid_idempotency_key": "invalid",
    "idempotency_key_reused": "idempotency_key_reused",
    "busy": "busy",
    "rejected": "rejected",
    UNAVAILABLE: UNAVAILABLE,
    OVERLOADED: OVERLOADED,
    "rate_limited": "rate_limited",
    "queue_full": "queue_full",
}
# The codes of a request the service could not read, of an order that is not there to read, and of the service's own
# failure: no answer of the sale, so errors, named by their status (`http_422`, `http_500`), as any answer outside
# the contract is.
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "bad_request",
        "client_disconnected",
        "method_not_allowed",
        "payload_too_large",
        "unsupported_media_type",
        "order_not_found",
        "http_error",
        "internal",
    }
)


def error_code(body: bytes) -> str | None:
    """The `error` of an HTTP error answer (`{"error": code, "message": text}`), or None for any other body."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


def outcome(status: int, code: str | None = None, *, replayed: bool = False) -> str:
    """The outcome of an HTTP answer to an order: a 201 is `created` (`replayed` with the replay header), a 202
    `accepted`, any other answer an `error_outcome`."""
    if status == 201:
        return REPLAYED if replayed else CREATED
    if status == 202:
        return ACCEPTED
    return error_outcome(status, code)


def error_outcome(status: int, code: str | None) -> str:
    """The outcome of an HTTP answer that is not an order (of any request): the outcome its error `code` stands
    for, else `http_<status>`, an error (an answer outside the contract)."""
    return OUTCOME_BY_CODE.get(code or "") or f"http_{status}"


def refusal(code: str) -> str:
    """The outcome of a refusal by its code, met without HTTP (a domain error or a strategy's, in-process; the reason
    of a failed order): the outcome the code stands for, else the code itself."""
    return OUTCOME_BY_CODE.get(code, code)


def settled(document: dict) -> str | None:
    """The outcome of an accepted order from its status document (`GET /orders/{id}/status`): `created` once
    completed, its reason's outcome once failed, None while pending."""
    progress = document.get("status")
    if progress == "completed":
        return CREATED
    if progress == "failed":
        return refusal(document.get("reason") or "failed")
    return None


def retry_after_s(value: str | bytes | None, *, now: datetime | None = None) -> float | None:
    """The wait a `Retry-After` value asks for, in seconds, as RFC 9110 (section 10.2.3) writes it: delay-seconds
    (`120`: digits only, so `1.5`, `-1` or `1e3` are malformed), or an HTTP-date (in any of its three forms) less
    `now` (default: this machine's clock), 0 once it has passed. None for no value or a malformed one, which a
    client ignores. Digits too many for a float give `inf`: the caller caps the wait.

    This service sends delay-seconds only: whole seconds rounded up, at least 1 (`flashsale.http.errors`), so a
    hint of 0.3 s reaches its clients as 1."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if date.tzinfo is None:  # asctime's form names no zone: every HTTP-date is in GMT
        date = date.replace(tzinfo=UTC)
    return max(0.0, (date - (now or datetime.now(UTC))).total_seconds())


# --- bodies -------------------------------------------------------------------------------------------------------
def order_body(user_id: str, flash_sale_id: str, quantity: int) -> bytes:
    """The body of `POST /api/orders`, as JSON bytes."""
    return json.dumps({"user_id": user_id, "flash_sale_id": flash_sale_id, "quantity": quantity}).encode()


def order_id(status: int, body: bytes) -> bytes:
    """The 16 bytes of the order's id in a 201's body (the order: `id`) or a 202's (`order_id`); ValueError,
    KeyError or TypeError for a body outside the contract."""
    return UUID(json.loads(body)["order_id" if status == 202 else "id"]).bytes


def order_path(order_id: UUID | str) -> str:
    return ORDER_PATH.format(order_id=order_id)


def order_status_path(order_id: UUID | str) -> str:
    return ORDER_STATUS_PATH.format(order_id=order_id)


# --- users --------------------------------------------------------------------------------------------------------
USERS_PAGE = 1000  # ids a page, the most the service gives


def fetch_user_ids(base_url: str, *, page: int = USERS_PAGE, timeout_s: float = 10.0) -> list[str]:
    """Every user id the service lists, page by page (`GET /api/users?limit=&offset=`). Blocking: the native target
    calls it in a thread, the Locust users as is (gevent makes the socket cooperative). No proxy, as for the orders."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    ids: list[str] = []
    while True:
        query = urllib.parse.urlencode({"limit": page, "offset": len(ids)})
        with opener.open(f"{base_url.rstrip('/')}{USER_IDS_PATH}?{query}", timeout=timeout_s) as response:
            data = json.load(response)
        batch = data["user_ids"]
        ids.extend(str(u) for u in batch)
        if not batch or len(ids) >= data.get("total", len(ids)):
            return ids
