"""`Idempotency-Key` on `POST /api/orders`, against the real service: a replay is the original 201 with
`Idempotent-Replayed: true`, concurrent retries place one order, a reused key is a 409, a bad key a 422; and the
load runner's retries, audited one order per key."""

from __future__ import annotations

import threading
import uuid

from flashsale.load import Closed, LoadConfig, run_load_async
from tests.e2e.conftest import count_orders, make_sale


def order_with_key(api, sale, user_index: int, key: str, quantity: int = 1):
    return api.order(sale.user_ids[user_index], sale.id, quantity, headers={"Idempotency-Key": key})


class TestReplays:
    def test_a_retry_gets_the_original_answer_and_places_nothing(self, api, database_url, sale):
        key = f"order-{uuid.uuid4()}"
        first = order_with_key(api, sale, 0, key)
        again = order_with_key(api, sale, 0, key)

        assert (first.status, again.status) == (201, 201)
        assert again.json == first.json
        assert again.header("location") == first.header("location")
        assert first.header("idempotent-replayed") is None
        assert again.header("idempotent-replayed") == "true"
        assert count_orders(database_url) == 1

    def test_concurrent_retries_place_one_order(self, api, database_url):
        sale = make_sale(database_url, users=2, inventory=50, per_user_limit=50)
        key, copies = f"race-{uuid.uuid4()}", 12
        replies: list = [None] * copies
        gate = threading.Barrier(copies)

        def client(i: int) -> None:
            gate.wait()
            replies[i] = order_with_key(api, sale, 0, key, quantity=3)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert {reply.status for reply in replies} == {201}
        assert len({reply.json["id"] for reply in replies}) == 1
        assert sum(reply.header("idempotent-replayed") == "true" for reply in replies) == copies - 1
        assert count_orders(database_url) == 1
        assert api.get(f"/api/flash-sales/{sale.id}").json["remaining_inventory"] == 47

    def test_replays_are_counted_apart(self, api, sale):
        key = f"counted-{uuid.uuid4()}"
        before = _orders_metric(api, "replayed")
        for _ in range(3):
            assert order_with_key(api, sale, 0, key).status == 201
        assert _orders_metric(api, "replayed") == before + 2


class TestRefusals:
    def test_a_key_reused_with_another_body_is_a_409(self, api, database_url, sale):
        key = f"reused-{uuid.uuid4()}"
        assert order_with_key(api, sale, 0, key).status == 201
        for user, quantity in ((0, 2), (1, 1)):
            reply = order_with_key(api, sale, user, key, quantity)
            assert (reply.status, reply.json["error"]) == (409, "idempotency_key_reused")
            assert key in reply.json["message"]
        assert count_orders(database_url) == 1

    def test_a_malformed_key_is_a_422_and_orders_nothing(self, api, database_url, sale):
        for key in ("x" * 256, "two words"):
            reply = order_with_key(api, sale, 0, key)
            assert (reply.status, reply.json["error"]) == (422, "invalid_idempotency_key")
        assert count_orders(database_url) == 0


class TestLoadWithRetries:
    async def test_retries_replay_and_the_audit_finds_one_order_per_key(self, server, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", base_url=server.url, database_url=database_url, shape=Closed(vus=4, think_ms=5),
                duration_s=1.5,
                users=30, inventory=1000, per_user_limit=1000, retry_rate=0.3, retry_pool=10,
            )
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        idem = summary["meta"]["idempotency"]
        assert idem["retries"] > 0
        assert idem["answers_disagreeing"] == 0
        assert summary["outcomes"]["replayed"] == idem["retries"]  # nothing refused here: every retry replays
        audit = summary["audit"]
        assert audit["keys"] == audit["orders"] == summary["outcomes"]["created"] == idem["keys"]
        assert audit["key_violations"] == 0
        assert audit["acknowledged"] == audit["orders"]  # replays named orders already acknowledged


def _orders_metric(api, outcome: str) -> float:
    wanted = f'flashsale_orders_total{{outcome="{outcome}",strategy="pessimistic"}}'
    for line in api.get("/metrics").body.decode().splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
