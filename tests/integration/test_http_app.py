"""The application in-process (no server, no socket): outcomes no well-behaved client can provoke from outside,
a strategy that is busy or rejects, and a bug, driven through the ASGI interface directly."""

from __future__ import annotations

import io
import json
import logging

import pytest

from flashsale.domain import PlaceOrder
from flashsale.http import create_app
from flashsale.http.log import JsonFormatter
from flashsale.strategies import Busy, OrderStrategy, Rejected


class Raising(OrderStrategy):
    name = "raising"
    summary = "raises what it is given, for tests"

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    async def create_order(self, conn, command: PlaceOrder):  # pragma: no cover - place_order never gets here
        raise AssertionError

    async def place_order(self, pool, command: PlaceOrder):
        self.counters["attempts"] += 1
        raise self.exc


async def asgi_call(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """One request through the ASGI interface: (status, headers, body)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    start = sent[0]
    return (
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


ORDER = json.dumps(
    {
        "user_id": "00000000-0000-4000-8000-000000000001",
        "flash_sale_id": "00000000-0000-4000-8000-000000000002",
        "quantity": 1,
    }
).encode()
JSON = {"content-type": "application/json"}


@pytest.fixture
def log_stream():
    """The service's log records, formatted as `flashsale serve` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flashsale.http")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def app_with(database_url, exc: Exception):
    return create_app(database_url, strategy=Raising(exc), pool_size=1)


class TestStrategyUnavailable:
    @pytest.mark.parametrize(
        ("exc", "code", "retry_after"),
        [
            (Busy("the inventory row stayed locked", retry_after_s=0.05), "busy", "1"),
            (Rejected("the order queue is full", retry_after_s=2.5), "rejected", "3"),
        ],
    )
    async def test_503_with_its_code_and_retry_after_rounded_up(self, database_url, exc, code, retry_after):
        app = app_with(database_url, exc)
        async with app.router.lifespan_context(app):  # opens the pool and starts the strategy, as uvicorn would
            status, headers, body = await asgi_call(app, "POST", "/api/orders", ORDER, JSON)

        assert (status, json.loads(body)) == (503, {"error": code, "message": str(exc)})
        assert headers["retry-after"] == retry_after
        samples = app.state.context.metrics.registry
        assert samples.get_sample_value("flashsale_orders_total", {"strategy": "raising", "outcome": code}) == 1
        assert (
            samples.get_sample_value("flashsale_strategy_events_total", {"strategy": "raising", "event": "attempts"})
            == 1
        )


class TestUnexpectedError:
    async def test_500_internal_without_details_and_logged_with_the_request_id(self, database_url, log_stream):
        app = app_with(database_url, RuntimeError("secret: connection string postgres://admin:pw@db"))
        async with app.router.lifespan_context(app):
            status, headers, body = await asgi_call(
                app, "POST", "/api/orders", ORDER, {**JSON, "x-request-id": "req-500"}
            )

        assert status == 500
        assert json.loads(body) == {"error": "internal", "message": "internal server error"}
        assert b"secret" not in body
        assert headers["x-request-id"] == "req-500"
        lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
        (error,) = [line for line in lines if line["level"] == "error"]
        assert error["request_id"] == "req-500"
        assert error["message"] == "unhandled error"
        assert (error["method"], error["path"]) == ("POST", "/api/orders")
        assert "RuntimeError: secret" in error["exception"]
        registry = app.state.context.metrics.registry
        labels = {"method": "POST", "route": "/api/orders", "status": "500"}
        assert registry.get_sample_value("flashsale_http_request_duration_seconds_count", labels) == 1
        assert registry.get_sample_value("flashsale_orders_total", {"strategy": "raising", "outcome": "internal"}) == 1
