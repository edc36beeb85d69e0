"""What happened to one request: a stable name for the summary, a small integer for the records.

The names are the same for both targets: an order `created`, or `replayed` (its idempotency key already had an
order, which was returned), a refusal by the rules of the sale (`sold_out`, ...; `idempotency_key_reused`), a
strategy that
could not take the order now (`busy`, `rejected`), a service that could not (`unavailable`: the database is lost
or no connection came free in time; `overloaded`: too many requests already wait), or an error, named by its class
(`PoolTimeout`, `ClientConnectorError`, ...) or, for an HTTP answer outside the contract, by its status (`http_500`).
"""

from __future__ import annotations

import json
from typing import Any

CREATED = "created"
REPLAYED = "replayed"  # a 201 for an order placed earlier with the same idempotency key
REFUSALS = ("sold_out", "per_user_limit_exceeded", "sale_not_active", "not_found", "invalid", "idempotency_key_reused")
UNAVAILABLE_DB = "unavailable"  # the database is lost, or no connection came free in time
OVERLOADED = "overloaded"  # the service refused to queue the request (too many waiting already)
ACCEPTED = "accepted"  # a 202: the order was stored PENDING and will be settled (`serve --accept async`)
ADMISSION = ("rate_limited", "queue_full")  # refused by admission control before any database work (429, 503)
UNAVAILABLE = ("busy", "rejected", UNAVAILABLE_DB, OVERLOADED, *ADMISSION)
GAVE_UP = "gave_up"  # an accepted order still pending when its client stopped polling (`--poll-max`)
KNOWN = (CREATED, *REFUSALS, *UNAVAILABLE, REPLAYED, ACCEPTED, GAVE_UP)

# Domain error codes (and the HTTP service's error codes) that share one outcome.
ALIASES = {
    "sale_not_found": "not_found",
    "user_not_found": "not_found",
    "invalid_quantity": "invalid",
    "invalid_idempotency_key": "invalid",
}

OTHER_ERROR = "other_error"  # every error class past the 255th distinct one (the records keep one byte)
_MAX_IDS = 256


def error_code(body: bytes) -> str | None:
    """The `error` of an HTTP error answer (`{"error": code, "message": text}`), or None for any other body."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


def http_error_name(status: int, code: str | None) -> str:
    """The outcome of an HTTP answer other than a 201: its error code when that names an outcome (through
    ALIASES), else `http_<status>` (an answer outside the contract)."""
    name = ALIASES.get(code, code) if code else None
    if name not in KNOWN or name == CREATED:
        return f"http_{status}"
    return name


def is_error(name: str) -> bool:
    """An outcome that is neither an order, a refusal nor an unavailable strategy."""
    return name not in KNOWN


class Outcomes:
    """Interns outcome names as ids 0..255: the known outcomes first (stable ids), error classes as they appear."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[str, int] = {}
        for name in KNOWN:
            self.id(name)

    def id(self, name: str) -> int:
        """The id of `name`, registered on first sight."""
        found = self._ids.get(name)
        if found is not None:
            return found
        if len(self.names) >= _MAX_IDS - 1 and name != OTHER_ERROR:
            return self.id(OTHER_ERROR)
        self._ids[name] = len(self.names)
        self.names.append(name)
        return self._ids[name]

    def for_code(self, code: str) -> int:
        """The id for an error code of the domain, a strategy or the HTTP service."""
        return self.id(ALIASES.get(code, code))

    def name(self, outcome_id: int) -> str:
        return self.names[outcome_id]
