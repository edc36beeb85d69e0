"""Structured logs: one JSON object per line on stderr, with the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flashsale.http import request_id

ACCESS_LOGGER = "flashsale.http.access"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "pid", "request_id", ...fields}` (`pid`: the process that wrote the
    line, one of the workers under `flashsale serve --workers N`); extra fields come from
    `logger.info(message, extra={"fields": {...}})`, a traceback from `exc_info` as `"exception"`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if (rid := request_id.current.get()) is not None:
            line["request_id"] = rid
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send every log record of the process (uvicorn's included) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
