"""Outcomes as the records keep them: a stable name for the summary, a small integer for each request's record.

The names, their groups and how an answer maps to one are the wire contract's (`flashsale.contract`): an order
`created`, `replayed` or `accepted`, a refusal by the sale or for now, or an error, named by its class
(`PoolTimeout`, `ClientConnectorError`, ...) or, for an HTTP answer outside the contract, by its status (`http_500`).
"""

from __future__ import annotations

from flashsale.contract import KNOWN, OTHER_ERROR, refusal

_MAX_IDS = 256


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
        return self.id(refusal(code))

    def name(self, outcome_id: int) -> str:
        return self.names[outcome_id]
