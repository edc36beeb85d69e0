"""Every request carries an id: the caller's `X-Request-ID` when it is a sane token, a fresh UUID otherwise.
The id of the request being served is in `current`, so any log line written while serving it can name it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from flashsale.contract import REQUEST_ID_HEADER

_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
# Visible ASCII only, bounded: an id is echoed in a response header and written to logs, so it must be
# unable to split either.
_ACCEPTED = re.compile(rb"[\x21-\x7e]{1,128}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def from_headers(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's id from raw ASGI headers if it is acceptable, else a new one."""
    for name, value in headers:
        if name == _HEADER_KEY:
            if _ACCEPTED.fullmatch(value):
                return value.decode("ascii")
            break
    return str(uuid.uuid4())
