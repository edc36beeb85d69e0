"""The parts of idempotency that need no database: how a batch treats keys, and the load runner's retries."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from flashsale.domain import FlashSale, IdempotencyKeyTaken, PlaceOrder, SoldOut
from flashsale.load.retries import KeyedRetries
from flashsale.strategies.batched import decide

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def a_sale(remaining=10, limit=5):
    return FlashSale(uuid4(), uuid4(), NOW - timedelta(hours=1), NOW + timedelta(hours=1), remaining, remaining, limit)


class TestBatchKeys:
    def test_a_key_taken_before_or_earlier_in_the_batch_places_nothing(self):
        sale, user = a_sale(), uuid4()
        commands = [
            PlaceOrder(user, sale.id, 1, "old"),  # has an order already
            PlaceOrder(user, sale.id, 1, "new"),
            PlaceOrder(user, sale.id, 1, "new"),  # the same retry twice in one batch
            PlaceOrder(user, sale.id, 1),  # no key: an order like any other
        ]
        outcomes, accepted = decide(sale, commands, {user: 0}, now=NOW, taken_keys={"old"})
        assert [type(o) for o in outcomes] == [IdempotencyKeyTaken, UUID, IdempotencyKeyTaken, UUID]
        assert [o.key for o in outcomes if isinstance(o, IdempotencyKeyTaken)] == ["old", "new"]
        assert [c.idempotency_key for c in accepted.values()] == ["new", None]

    def test_a_refused_key_is_free_for_the_next_copy(self):
        sale, user, other = a_sale(remaining=1), uuid4(), uuid4()
        commands = [
            PlaceOrder(other, sale.id, 1),
            PlaceOrder(user, sale.id, 1, "k"),  # sold out: its key stays free
            PlaceOrder(user, sale.id, 1, "k"),  # so the copy is judged too (and sold out as well)
        ]
        outcomes, _ = decide(sale, commands, {user: 0, other: 0}, now=NOW)
        assert [type(o) for o in outcomes] == [UUID, SoldOut, SoldOut]


class TestKeyedRetries:
    def test_without_retries_every_request_gets_a_fresh_key(self):
        retries = KeyedRetries(rate=0.0, prefix="run")
        assert [retries.next(user) for user in (5, 6, 7)] == [(0, 5), (1, 6), (2, 7)]
        assert (retries.key(10), retries.keys, retries.retries) == ("run-a", 3, 0)

    def test_retries_resend_a_recent_key_for_its_own_user(self):
        retries = KeyedRetries(rate=0.5, pool=3, seed=1)
        sent = [retries.next(user) for user in range(2000)]
        resent = sent[-1000:]
        fresh_users = dict(sent)  # key number -> user it was first sent for (later retries repeat the pair)
        assert retries.retries == sum(1 for n, _ in sent) - retries.keys
        assert 0.45 < retries.retries / 2000 < 0.55
        assert all(fresh_users[n] == user for n, user in resent)
        # a retry only ever picks one of the last three keys issued before it
        issued = -1
        for number, _ in sent:
            if number > issued:
                issued = number
            else:
                assert issued - number < 3

    def test_answers_for_one_key_must_agree(self):
        retries = KeyedRetries(prefix="run")
        for user in range(3):
            retries.next(user)
        first, second = uuid4(), uuid4()
        retries.answered(0, first.bytes)
        retries.answered(0, first.bytes)
        retries.answered(2, second.bytes)
        assert retries.disagreements == 0
        retries.answered(0, second.bytes)
        assert retries.disagreements == 1
        assert retries.acknowledged() == (["run-0", "run-2"], [first, second])
        assert retries.worker_fields() == {
            "keys": 3,
            "retries": 0,
            "disagreements": 1,
            "acknowledged_keys": ["run-0", "run-2"],
            "acknowledged_key_orders": [first.bytes, second.bytes],
        }

    @pytest.mark.parametrize(("rate", "pool"), [(1.0, 50), (-0.1, 50), (0.2, 0)])
    def test_refuses_impossible_settings(self, rate, pool):
        with pytest.raises(ValueError, match="retry"):
            KeyedRetries(rate=rate, pool=pool)
