"""The wire contract: every answer the service can send means one outcome to a client, every outcome is in one
group, and the bodies the clients send and read are the ones the service reads and sends."""

import ast
import importlib
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.exceptions import HTTPException

import flashsale.http.app  # noqa: F401  (every exception class the service explains, loaded)
from flashsale import contract
from flashsale.domain import Order, OrderStatus
from flashsale.http import errors
from flashsale.http.order_dto import OrderAcceptedResponse, OrderResponse, OrderStatusResponse, PlaceOrderRequest
from tests.imports import packages_imported


def _leaves_with_a_code(classes) -> set[type]:
    found, stack = set(), list(classes)
    while stack:
        cls = stack.pop()
        subclasses = cls.__subclasses__()
        if not subclasses and isinstance(getattr(cls, "code", None), str):
            found.add(cls)
        stack += subclasses
    return found


def _api_error_literals() -> set[tuple[int, str]]:
    """Every `ApiError(status, code, ...)` of `flashsale.http` whose status and code are constants."""
    found = set()
    package = Path(errors.__file__).parent
    for path in sorted(package.glob("*.py")):
        source = path.read_text()
        if "ApiError(" not in source:
            continue
        namespace = vars(importlib.import_module(f"flashsale.http.{path.stem}"))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiError":
                try:
                    status, code = (
                        eval(compile(ast.Expression(arg), path, "eval"), namespace) for arg in node.args[:2]
                    )
                except NameError:  # the code of the exception being explained: the classes' walk has it
                    continue
                found.add((status, code))
    return found


def service_answers() -> set[tuple[int, str]]:
    """Every (status, error code) the service can answer with, read from the service itself: the code of each
    exception class it explains (`errors.HANDLED` and their subclasses), each code its HTTP layer names, the codes
    of Starlette's own refusals, and the bare 500."""
    answers = set()
    for cls in _leaves_with_a_code(errors.HANDLED):
        exc = cls.__new__(cls)  # no message needed: only the status and the code are read
        exc.retry_after_s = 1.0
        error = errors.to_api_error(exc)
        assert error is not None, cls
        answers.add((error.status, error.code))
    answers |= _api_error_literals()
    for status in (*errors.CODE_BY_HTTP_STATUS, 418):  # 418: any status without a code of its own
        error = errors.to_api_error(HTTPException(status))
        assert error is not None
        answers.add((error.status, error.code))
    answers.add((500, contract.error_code(errors.INTERNAL_BODY)))
    return answers


# What each answer the service can send means to a client (a code the service starts sending needs a line here).
EXPECTED = {
    (409, "sold_out"): "sold_out",
    (409, "per_user_limit_exceeded"): "per_user_limit_exceeded",
    (409, "sale_not_active"): "sale_not_active",
    (409, "idempotency_key_reused"): "idempotency_key_reused",
    (404, "sale_not_found"): "not_found",
    (404, "user_not_found"): "not_found",
    (404, "not_found"): "not_found",
    (422, "invalid_quantity"): "invalid",
    (422, "invalid_idempotency_key"): "invalid",
    (429, "rate_limited"): "rate_limited",
    (503, "busy"): "busy",
    (503, "rejected"): "rejected",
    (503, "queue_full"): "queue_full",
    (503, "unavailable"): "unavailable",
    (503, "overloaded"): "overloaded",
    (400, "bad_request"): "http_400",
    (400, "client_disconnected"): "http_400",
    (404, "order_not_found"): "http_404",
    (405, "method_not_allowed"): "http_405",
    (413, "payload_too_large"): "http_413",
    (415, "unsupported_media_type"): "http_415",
    (418, "http_error"): "http_418",
    (422, "invalid_request"): "http_422",
    (500, "internal"): "http_500",
}
SERVICE_ANSWERS = sorted(service_answers())


class TestAnswers:
    def test_every_code_the_service_sends_is_in_the_contract_once(self):
        """A code the service answers with is either a refusal with its outcome or a known error code."""
        for _, code in SERVICE_ANSWERS:
            assert (code in contract.OUTCOME_BY_CODE) != (code in contract.ERROR_CODES), code

    def test_the_table_below_covers_what_the_service_sends(self):
        assert set(SERVICE_ANSWERS) == set(EXPECTED)

    @pytest.mark.parametrize(("status", "code"), SERVICE_ANSWERS, ids=lambda v: str(v))
    def test_each_answer_maps_to_its_outcome(self, status, code):
        assert contract.outcome(status, code) == EXPECTED[status, code]

    @pytest.mark.parametrize(("status", "code"), SERVICE_ANSWERS, ids=lambda v: str(v))
    def test_a_429_or_503_is_a_refusal_for_now_and_a_500_an_error(self, status, code):
        group = contract.group(contract.outcome(status, code))
        if status in (429, 503):
            assert group == "service refusal"
        elif status == 409:
            assert group == "sale refusal"
        elif status >= 500:
            assert group == "error"

    def test_orders_are_read_from_the_status(self):
        assert contract.outcome(201) == "created"
        assert contract.outcome(201, replayed=True) == "replayed"
        assert contract.outcome(202) == "accepted"
        assert contract.outcome(200, "created") == "http_200"  # only a 201 creates
        assert contract.error_outcome(201, None) == "http_201"  # not an order's answer: a status poll's, say

    def test_other_answers_are_named_by_their_status(self):
        assert contract.outcome(500, "internal_error") == "http_500"
        assert contract.outcome(502, None) == "http_502"
        assert contract.outcome(409, "replayed") == "http_409"  # an outcome's name is no error code

    def test_error_code_is_read_from_the_json_body(self):
        assert contract.error_code(b'{"error": "sold_out", "message": "sold out"}') == "sold_out"
        assert contract.error_code(b"<html>bad gateway</html>") is None
        assert contract.error_code(b'["sold_out"]') is None
        assert contract.error_code(b'{"error": 409}') is None

    def test_refusals_met_without_http_share_outcomes(self):
        assert contract.refusal("sale_not_found") == contract.refusal("user_not_found") == "not_found"
        assert contract.refusal("invalid_quantity") == "invalid"
        assert contract.refusal("busy") == "busy"
        assert contract.refusal("new_code") == "new_code"


class TestGroups:
    def test_the_groups_partition_the_named_outcomes(self):
        named = [name for names in contract.GROUPS.values() for name in names]
        assert len(named) == len(set(named)), "an outcome in two groups"
        assert set(named) == {*contract.KNOWN, contract.OTHER_ERROR}
        assert len(contract.KNOWN) == len(set(contract.KNOWN))

    def test_every_refusal_code_stands_for_a_refusal(self):
        refusals = {*contract.SALE_REFUSALS, *contract.SERVICE_REFUSALS}
        assert set(contract.OUTCOME_BY_CODE.values()) == refusals
        assert not contract.ERROR_CODES & contract.OUTCOME_BY_CODE.keys()

    def test_accepted_is_a_success_and_unavailable_a_refusal_for_now(self):
        assert contract.group("accepted") == "success"
        assert contract.group("unavailable") == "service refusal"
        assert not contract.is_error("unavailable")

    @pytest.mark.parametrize("name", ["TimeoutError", "ClientConnectorError", "http_500", "gave_up", "other_error"])
    def test_what_no_group_names_is_an_error(self, name):
        assert contract.group(name) == "error"
        assert contract.is_error(name)

    def test_answers_that_needed_the_database(self):
        assert set(contract.DECIDED) == {*contract.SUCCESSES, *contract.SALE_REFUSALS}


def _order(status: OrderStatus = OrderStatus.CONFIRMED, reason: str | None = None) -> Order:
    return Order(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        flash_sale_id=uuid.uuid4(),
        quantity=2,
        status=status,
        created_at=datetime.now(UTC),
        failure_reason=reason,
    )


class TestBodies:
    def test_the_order_body_is_what_the_service_reads(self):
        user, sale = uuid.uuid4(), uuid.uuid4()
        body = PlaceOrderRequest.model_validate_json(contract.order_body(str(user), str(sale), 3))
        assert (body.user_id, body.flash_sale_id, body.quantity) == (user, sale, 3)

    def test_the_order_id_is_read_from_a_201_and_a_202(self):
        order = _order()
        placed = OrderResponse.from_domain(order).model_dump_json().encode()
        accepted = OrderAcceptedResponse(
            order_id=order.id, status="pending", status_url=contract.order_status_path(order.id)
        ).model_dump_json()
        assert contract.order_id(201, placed) == contract.order_id(202, accepted.encode()) == order.id.bytes
        with pytest.raises(KeyError):
            contract.order_id(201, b'{"status": "CONFIRMED"}')

    @pytest.mark.parametrize(
        ("status", "reason", "outcome"),
        [
            (OrderStatus.CONFIRMED, None, "created"),
            (OrderStatus.FAILED, "sold_out", "sold_out"),
            (OrderStatus.FAILED, "user_not_found", "not_found"),
            (OrderStatus.FAILED, None, "failed"),
            (OrderStatus.PENDING, None, None),
        ],
    )
    def test_a_status_document_says_how_an_accepted_order_ended(self, status, reason, outcome):
        document = json.loads(OrderStatusResponse.from_domain(_order(status, reason)).model_dump_json())
        assert contract.settled(document) == outcome

    def test_paths_of_one_order(self):
        order_id = uuid.UUID(int=5)
        assert contract.order_path(order_id) == f"/api/orders/{order_id}"
        assert contract.order_status_path(order_id) == f"/orders/{order_id}/status"


NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


class TestRetryAfter:
    """`Retry-After` as RFC 9110 writes it: delay-seconds or an HTTP-date; anything else is ignored (None)."""

    @pytest.mark.parametrize(("value", "seconds"), [("1", 1.0), ("120", 120.0), (b"3", 3.0), (" 2 ", 2.0), ("0", 0.0)])
    def test_delay_seconds(self, value, seconds):
        assert contract.retry_after_s(value) == seconds

    @pytest.mark.parametrize("value", [None, "", "1.5", "-1", "+5", "1e3", "0x10", "soon", "\uff11", "1 2", b"\xff"])
    def test_a_missing_or_malformed_value_is_none(self, value):
        assert contract.retry_after_s(value) is None

    def test_a_huge_value_is_read_whole_for_the_caller_to_cap(self):
        assert contract.retry_after_s("9" * 30) == 1e30
        assert contract.retry_after_s("9" * 5000) == float("inf")  # past a float, and past int()'s digit limit

    @pytest.mark.parametrize(
        "date",
        ["Fri, 01 May 2026 12:00:30 GMT", "Friday, 01-May-26 12:00:30 GMT", "Fri May  1 12:00:30 2026"],
        ids=["IMF-fixdate", "rfc850", "asctime"],
    )
    def test_an_http_date_in_any_of_its_forms_is_the_time_left_until_it(self, date):
        assert contract.retry_after_s(date, now=NOW) == 30.0

    def test_a_date_past_is_no_wait(self):
        assert contract.retry_after_s("Fri, 01 May 2026 11:59:00 GMT", now=NOW) == 0.0

    @pytest.mark.parametrize("hint_s", [0.001, 0.5, 1.0, 2.5, 10.0])
    def test_the_services_header_reads_back_as_whole_seconds_never_below_its_hint_nor_below_one(self, hint_s):
        sent = contract.retry_after_s(errors.retry_after(hint_s))
        assert sent is not None
        assert sent == int(sent) >= max(1.0, hint_s)


class _Users(BaseHTTPRequestHandler):
    ids: ClassVar[list[str]] = [str(uuid.UUID(int=i)) for i in range(5)]

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
        limit, offset = query["limit"], query["offset"]
        body = json.dumps({"user_ids": self.ids[offset : offset + limit], "total": len(self.ids)}).encode()
        self.send_response(200 if url.path == contract.USER_IDS_PATH else 404)
        self.send_header("Content-Type", contract.JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_fetch_user_ids_reads_every_page():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Users)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ids = contract.fetch_user_ids(f"http://127.0.0.1:{server.server_port}/", page=2, timeout_s=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert ids == _Users.ids


def test_the_contract_imports_neither_the_service_nor_asyncio():
    """The Locust users import it under gevent: nothing of the service, nothing asyncio-only."""
    heavy = {"asyncio", "starlette", "psycopg", "psycopg_pool", "pydantic", "aiohttp", "numpy", "gevent"}
    assert packages_imported("import flashsale.contract") & heavy == set()
