"""The one middleware every request passes through (plain ASGI, for speed): it gives the request its id and
echoes it as `X-Request-ID`, times it into the duration histogram, writes the access log line, and turns any
unexpected exception into a logged `{"error": "internal"}` 500."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flashsale.contract import REQUEST_ID_HEADER
from flashsale.http import request_id
from flashsale.http.errors import internal_error_response
from flashsale.http.log import ACCESS_LOGGER
from flashsale.http.metrics import Metrics

UNMATCHED_ROUTE = "unmatched"  # one label for every unknown path, so that scanners cannot explode the metrics

log = logging.getLogger("flashsale.http")
access_log = logging.getLogger(ACCESS_LOGGER)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id.from_headers(scope["headers"])
        token = request_id.current.set(rid)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"method": scope["method"], "path": scope["path"]}})
            if not response_started:
                await internal_error_response()(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            if self.access_log:
                access_log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "route": route,
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 3),
                        }
                    },
                )
            request_id.current.reset(token)
