"""The Locust engine's parts that need no Locust: a worker's orders (the bodies it sends, every answer recorded under
the native runner's outcome names from the common origin, ready for the exact merge), and the engine's settings."""

import json
import uuid

import pytest

from flashsale.load.locust.engine import LocustEngine
from flashsale.load.locust.orders import WorkerOrders
from flashsale.load.merge import merge
from flashsale.load.outcomes import Outcomes
from flashsale.load.retries import KeyedRetries
from flashsale.load.runner import LoadConfig
from flashsale.load.shapes import Open
from tests.imports import packages_imported

SALE = uuid.UUID("00000000-0000-4000-8000-000000000001")
USERS = [str(uuid.UUID(int=i)) for i in (1, 2, 3)]
ORIGIN = 1_000_000_000


def created(order_id: uuid.UUID) -> bytes:
    return json.dumps({"id": str(order_id), "status": "CONFIRMED"}).encode()


def refused(code: str) -> bytes:
    return json.dumps({"error": code, "message": code}).encode()


@pytest.fixture
def orders() -> WorkerOrders:
    made = WorkerOrders(USERS, SALE, quantity=2)
    made.begin(ORIGIN)
    return made


class TestRequests:
    def test_each_user_has_its_body(self, orders):
        order = orders.next(1)
        assert json.loads(order.body) == {"user_id": USERS[1], "flash_sale_id": str(SALE), "quantity": 2}
        assert order.headers == {"Content-Type": "application/json"}
        assert order.key is None

    def test_keyed_orders_carry_an_idempotency_key(self):
        keyed = WorkerOrders(USERS, SALE, retries=KeyedRetries(rate=0.0, prefix="w1"))
        first, second = keyed.next(0), keyed.next(2)
        assert (first.headers["Idempotency-Key"], second.headers["Idempotency-Key"]) == ("w1-0", "w1-1")
        assert json.loads(second.body)["user_id"] == USERS[2]

    def test_no_users_is_a_clear_error(self):
        with pytest.raises(LookupError, match="no users"):
            WorkerOrders([], SALE)


class TestAnswers:
    def test_outcomes_are_named_as_the_native_http_target_names_them(self, orders):
        placed = uuid.uuid4()
        answers = [
            (201, created(placed), "created"),
            (409, refused("sold_out"), "sold_out"),
            (404, refused("user_not_found"), "not_found"),
            (503, refused("overloaded"), "overloaded"),
            (500, b"Internal Server Error", "http_500"),
        ]
        for status, body, name in answers:
            assert orders.answered(orders.next(0), ORIGIN + 10, ORIGIN + 30, status, body, False) == name
        assert orders.failed(ORIGIN + 40, ORIGIN + 95, TimeoutError()) == "TimeoutError"

        result = orders.result(worker=3)
        assert [result.outcome_names[i] for i in result.outcome] == [name for *_, name in answers] + ["TimeoutError"]
        assert list(memoryview(result.status).cast("H")) == [201, 409, 404, 503, 500, 0]
        assert list(memoryview(result.start_ns).cast("q")) == [10, 10, 10, 10, 10, 40]
        assert list(memoryview(result.latency_ns).cast("q")) == [20, 20, 20, 20, 20, 55]
        assert result.acknowledged == placed.bytes
        assert result.worker == 3

    def test_a_replayed_key_is_its_own_outcome_and_answers_are_checked(self):
        keyed = WorkerOrders(USERS, SALE, retries=KeyedRetries(rate=0.0, prefix="w"))
        keyed.begin(ORIGIN)
        placed = uuid.uuid4()
        order = keyed.next(0)
        assert keyed.answered(order, ORIGIN, ORIGIN + 1, 201, created(placed), False) == "created"
        assert keyed.answered(order, ORIGIN + 2, ORIGIN + 3, 201, created(placed), True) == "replayed"
        assert keyed.answered(order, ORIGIN + 4, ORIGIN + 5, 201, created(uuid.uuid4()), True) == "replayed"

        result = keyed.result()
        assert (result.keys, result.disagreements) == (1, 1)
        assert result.acknowledged_keys == ["w-0"]
        assert result.acknowledged_key_orders == [placed.bytes]

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [
            (201, b"<html>oops</html>", "JSONDecodeError"),
            (201, b'{"status": "CONFIRMED"}', "KeyError"),
            (202, b'{"order_id": "not-a-uuid"}', "ValueError"),
        ],
        ids=["not-json", "no-id", "bad-id"],
    )
    def test_an_order_answer_without_an_order_id_is_an_error_with_its_status(self, orders, status, body, error):
        assert orders.answered(orders.next(0), ORIGIN, ORIGIN + 5, status, body, False) == error
        result = orders.result()
        assert [result.outcome_names[i] for i in result.outcome] == [error]
        assert list(memoryview(result.status).cast("H")) == [status]
        assert (result.acknowledged, result.accepted) == (b"", b"")

    def test_requests_never_answered_count_as_interrupted(self, orders):
        orders.next(0)
        orders.answered(orders.next(1), ORIGIN, ORIGIN + 5, 409, refused("sold_out"), False)
        stats = orders.result().stats
        assert (stats.started, stats.interrupted) == (2, 1)
        assert stats.elapsed_s == pytest.approx(5e-9)

    def test_two_workers_merge_exactly(self):
        """Each worker interns its error classes in its own order; the merge maps them back to the same names."""
        first, second = WorkerOrders(USERS, SALE), WorkerOrders(USERS, SALE)
        for worker in (first, second):
            worker.begin(ORIGIN)
        first.failed(ORIGIN, ORIGIN + 1, ConnectionRefusedError())
        first.failed(ORIGIN, ORIGIN + 1, TimeoutError())
        second.failed(ORIGIN, ORIGIN + 1, TimeoutError())
        second.answered(second.next(0), ORIGIN, ORIGIN + 1, 409, refused("sold_out"), False)

        outcomes = Outcomes()
        merged = merge([second.result(1), first.result(0)], outcomes)
        names = [outcomes.name(i) for i in merged.records.outcome]
        assert names == ["ConnectionRefusedError", "TimeoutError", "TimeoutError", "sold_out"]


class TestRetryAfter:
    def test_a_hint_is_read_and_capped_and_every_wait_reaches_the_merged_stats(self):
        first, second = WorkerOrders(USERS, SALE, retry_after_max_s=5.0), WorkerOrders(USERS, SALE)
        assert first.wait_asked("2") == 2.0
        assert first.wait_asked("120") == 5.0
        assert second.wait_asked("120") == 120.0  # no cap
        assert first.wait_asked(None) == first.wait_asked("soon") == 0.0
        first.waited(2.0)
        first.waited(0.5)
        second.waited(1.0)
        merged = merge([first.result(0), second.result(1)], Outcomes())
        assert (merged.stats.retry_after_waits, merged.stats.retry_after_wait_s) == (3, 3.5)

    def test_the_engine_passes_the_option_and_its_cap_to_the_users(self):
        def scenario_args(**changes):
            config = LoadConfig(target="http", engine="locust", **changes)
            return LocustEngine(config, base_url="http://x", flash_sale_id=SALE, workers=1)._scenario_args()

        capped = scenario_args(honour_retry_after=True, retry_after_max_s=5.0)
        assert "--honour-retry-after" in capped
        assert capped[capped.index("--retry-after-max") + 1] == "5.0"
        assert "--retry-after-max" not in scenario_args(honour_retry_after=True)
        assert "--honour-retry-after" not in scenario_args()


class TestEngineSettings:
    def test_the_open_model_is_refused(self):
        config = LoadConfig(target="http", engine="locust", shape=Open(rate=100.0))
        with pytest.raises(ValueError, match="closed model"):
            LocustEngine(config, base_url="http://127.0.0.1:1", flash_sale_id=SALE, workers=2)

    def test_at_least_one_worker(self):
        with pytest.raises(ValueError, match="at least 1"):
            LocustEngine(LoadConfig(target="http", engine="locust"), base_url="http://x", flash_sale_id=SALE, workers=0)


def test_the_engine_and_the_orders_never_import_locust_or_gevent():
    """gevent patches the standard library on import: it must stay out of the asyncio process that runs the engine."""
    code = (
        "import flashsale.load.locust.engine, flashsale.load.locust.orders, flashsale.cli.main as m\nm.build_parser()"
    )
    assert packages_imported(code) & {"gevent", "locust", "geventhttpclient"} == set()
