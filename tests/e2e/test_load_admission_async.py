"""The load runner against the service's admission control and asynchronous orders (FlashDeal phases 3-5): 429s
and 503s as outcomes, 202s followed to their end, and the audit of every accepted order."""

import math

import numpy as np
import pytest

from flashsale.http.settings import ServiceSettings
from flashsale.load import Closed, LoadConfig, run_load_async

pytestmark = pytest.mark.slow


def config(database_url, *, vus, **changes):
    return LoadConfig(
        target="http", database_url=database_url, shape=Closed(vus=vus, think_ms=0), **{"duration_s": 1.5, **changes}
    )


class TestAdmissionOutcomes:
    async def test_a_user_over_the_rate_is_refused_429_as_rate_limited(self, database_url):
        # one user, a bucket of one order a second: of the many orders two VUs send in 1.5 s, the first passes,
        # then one a second; the bounds are read from when the orders were sent, not from the run's length
        rate = 1.0
        result = await run_load_async(config(database_url, vus=2, users=1, inventory=100, per_user_limit=100,
                                             service=ServiceSettings(user_rate=rate)))  # fmt: skip
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["outcomes"]["rate_limited"] > 10
        created = records[records["outcome"] == "created"]
        answered = created["start_s"] + created["latency_ms"] / 1e3
        assert len(created) == summary["outcomes"].get("created", 0) == summary["audit"]["orders"]
        # every admission lies between its order's sending and its answer: at most the full bucket (one token),
        # plus one token a second between the first admission and the last
        assert len(created) >= 1  # the bucket starts full
        assert len(created) <= 1 + math.floor((answered.max() - created["start_s"].min()) * rate)
        # the first token was taken by the time the first 201 came back; an order sent a second after that finds
        # the next one, unless another order took it: either way a second order passed
        if (records["start_s"] >= answered.min() + 1 / rate).any():
            assert len(created) >= 2
        assert set(result.records.loc[result.records["outcome"] == "rate_limited", "status"]) == {429}
        assert summary["meta"]["errors"] == {}  # a known refusal, not an error

    async def test_a_full_queue_answers_503_queue_full(self, database_url):
        # one order carried out, one waiting: the other 14 VUs' orders meet a full queue
        result = await run_load_async(
            config(database_url, vus=16, users=1000, inventory=100_000, per_user_limit=100,
                   service=ServiceSettings(queue_size=1, queue_workers=1))
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["outcomes"]["queue_full"] > 0
        assert set(result.records.loc[result.records["outcome"] == "queue_full", "status"]) == {503}
        assert summary["outcomes"]["created"] == summary["audit"]["orders"]


class TestHonouringRetryAfter:
    """One user, a bucket of one order every 2 s (`--user-rate 0.5`): the service's 429s ask for `Retry-After: 1`
    or `2` (whole seconds, rounded up). Virtual users without a pause that honour it wait a second or more after each
    refusal, so each meets at most one a second; those that do not come straight back. Counted, never timed."""

    RATE, VUS, DURATION_S = 0.5, 3, 3.0
    SHORTEST_HINT_S, LONGEST_HINT_S = 1, 2  # ceil(1 / RATE): what the service can ask for

    async def run(self, database_url, *, honour):
        return await run_load_async(
            config(database_url, vus=self.VUS, users=1, inventory=1000, per_user_limit=1000, duration_s=self.DURATION_S,
                   service=ServiceSettings(user_rate=self.RATE), honour_retry_after=honour)
        )  # fmt: skip

    @property
    def most_refusals(self) -> int:
        """Each VU's refusals start at least the shortest hint apart, within the run."""
        return self.VUS * (math.floor(self.DURATION_S / self.SHORTEST_HINT_S) + 1)

    async def test_each_refusal_is_waited_out_so_refusals_are_bounded_by_the_hint(self, database_url):
        result = await self.run(database_url, honour=True)
        summary, hinted = result.summary, result.summary["meta"]["retry_after"]
        assert result.ok, summary["meta"]["audit_problems"]
        refused = summary["outcomes"].get("rate_limited", 0)
        assert set(summary["outcomes"]) <= {"created", "rate_limited"}
        assert 1 <= refused <= self.most_refusals
        assert hinted["honoured"] is True
        assert (hinted["service_refusals"], hinted["service_refusals_per_s"]) == (refused, refused / self.DURATION_S)
        # every refusal asked for a wait longer than no think time; each VU's last wait may be cut by the end
        assert hinted["waits"] == refused
        assert (refused - self.VUS) * self.SHORTEST_HINT_S <= hinted["waited_s"] <= refused * self.LONGEST_HINT_S
        assert "Retry-After honoured" in result.text()

    async def test_without_it_refused_users_come_straight_back(self, database_url):
        result = await self.run(database_url, honour=False)
        summary, hinted = result.summary, result.summary["meta"]["retry_after"]
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["outcomes"]["rate_limited"] > self.most_refusals
        assert (hinted["honoured"], hinted["waits"], hinted["waited_s"]) == (False, 0, 0.0)
        assert hinted["service_refusals"] == summary["outcomes"]["rate_limited"]


class TestAsynchronousOrders:
    async def test_every_accepted_order_is_followed_to_one_end_and_audited(self, database_url):
        result = await run_load_async(
            config(database_url, vus=8, users=100, inventory=30, per_user_limit=1,
                   service=ServiceSettings(queue_size=50, accept="async"), poll_interval_s=0.1, poll_max_s=20.0)
        )  # fmt: skip
        summary, settled = result.summary, result.summary["meta"]["async"]
        assert result.ok, summary["meta"]["audit_problems"]
        accepted = summary["outcomes"]["accepted"]
        assert set(result.records["status"]) <= {202, 503}
        # every 202 was followed to exactly one end: confirmed, or refused with the sale's reason
        assert settled["followed"] == accepted
        assert sum(settled["settled"].values()) == accepted
        assert "gave_up" not in settled["settled"]
        created = settled["settled"]["created"]
        assert created == summary["audit"]["orders"]
        # 30 units: all sold once any order was refused for want of stock (a busy machine may not get that far)
        assert created == 30 if "sold_out" in settled["settled"] else 0 < created <= 30
        assert set(settled["settled"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert summary["audit"]["accepted"] == settled["accepted"]
        assert summary["audit"]["accepted_unsettled"] == 0
        assert summary["audit"]["pending"] == 0
        # nothing is settled before the first poll, and each order's end was seen after its acceptance
        took = settled["time_to_terminal_ms"]
        assert took["min"] >= 100.0
        assert took["p50"] >= summary["by_outcome"]["accepted"]["p50"]
        assert np.isfinite(took["p99"])

    async def test_accepted_orders_from_two_load_processes_are_merged_and_audited(self, database_url):
        """`--workers 2`: each process follows its own 202s; the merge brings every accepted id and every
        settlement back to the audit and the report."""
        result = await run_load_async(
            config(database_url, vus=4, workers=2, users=100, inventory=5, per_user_limit=1,
                   service=ServiceSettings(queue_size=50, accept="async"), poll_interval_s=0.05, poll_max_s=20.0)
        )  # fmt: skip
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        accepted = records[records["outcome"] == "accepted"]
        assert set(accepted["worker"]) == {0, 1}  # both processes had orders accepted
        settled = summary["meta"]["async"]
        assert settled["accepted"] == summary["audit"]["accepted"] == len(accepted)
        assert summary["audit"]["accepted_unsettled"] == 0
        assert settled["followed"] == len(accepted) == sum(settled["settled"].values())
        assert set(settled["settled"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert settled["settled"]["created"] == 5 == summary["audit"]["orders"] == summary["audit"]["acknowledged"]
