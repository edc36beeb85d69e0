"""The "Reading it" paragraphs, from small hand-made tables of the shape `run_cells` returns: each sentence follows
the data, and says the opposite when the data does."""

import pandas as pd

from flashsale.experiments import analysis, readings


def run(strategy="pessimistic", vus=1, **columns):
    """A cell of the concurrency sweep or the contention notebook."""
    return {"label": f"{strategy}, {vus} VUs", "strategy": strategy, "vus": vus, "safe": strategy != "unsafe",
            "orders_per_s": 100.0, "latency_ms.p95": 2.0, "lock_waiters_mean": 0.0, "audit.ok": True,
            **columns}  # fmt: skip


def levels(strategy, *rates_and_p95s):
    """One run per level (1, 4, 16, ... VUs) with these (orders/s, p95) figures."""
    return [
        run(strategy, vus=4**i, orders_per_s=rate, **{"latency_ms.p95": p95})
        for i, (rate, p95) in enumerate(rates_and_p95s)
    ]


class TestConcurrencyReading:
    def test_a_flat_peak_reads_as_queueing_and_a_peak_at_the_top_as_no_ceiling(self):
        cells = pd.DataFrame(
            [
                *levels("pessimistic", (100.0, 2.0), (400.0, 5.0), (380.0, 20.0)),
                *levels("atomic", (200.0, 1.0), (800.0, 2.0), (1600.0, 4.0)),
                *levels("unsafe", (5000.0, 1.0), (9000.0, 1.0), (9500.0, 1.0)),
            ]
        )
        text = readings.concurrency_reading(cells)
        assert "**atomic** still gained orders/s at the highest level measured (16 VUs, 1,600 orders/s)" in text
        assert (
            "Past its peak at 4 VUs, **pessimistic** kept 95% of its peak orders/s at 16 VUs while its p95 went from "
            "5.00 to 20.00 ms (4.0x): the extra users only waited in the queue." in text
        )
        assert "unsafe" not in text  # the counter-example has no peak worth reading
        assert "pgbench" not in text  # none ran

    def test_a_falling_throughput_reads_as_contention(self):
        cells = pd.DataFrame(levels("pessimistic", (100.0, 2.0), (400.0, 5.0), (200.0, 40.0)))
        text = readings.concurrency_reading(cells)
        assert "kept 50% of its peak orders/s" in text
        assert "contention cost throughput as well as waiting" in text

    def test_the_peak_and_its_p95_are_medians_of_the_repeats(self):
        cells = pd.DataFrame(
            [
                *levels("pessimistic", (100.0, 2.0), (400.0, 4.0)),
                *levels("pessimistic", (100.0, 2.0), (400.0, 6.0)),
                *levels("pessimistic", (100.0, 2.0), (9000.0, 5.0)),
                run(vus=16, orders_per_s=300.0, **{"latency_ms.p95": 30.0}),
            ]
        )
        text = readings.concurrency_reading(cells)
        assert "peak at 4 VUs, **pessimistic** kept 75% of its peak orders/s at 16 VUs" in text
        assert "from 5.00 to 30.00 ms (6.0x)" in text

    def test_the_driver_against_pgbench_where_it_ran(self):
        cells = pd.DataFrame(levels("pessimistic", (90.0, 2.0), (150.0, 4.0)))
        reference = pd.DataFrame(
            [
                {"strategy": "pessimistic", "clients": 1, "orders_per_s": 100.0},
                {"strategy": "pessimistic", "clients": 4, "orders_per_s": 300.0},
            ]
        )
        text = readings.concurrency_reading(cells, reference)
        assert (
            "reached 50% to 90% of the orders/s of pgbench replaying the same SQL (2 strategy and level pairs)" in text
        )


class TestContentionReading:
    CELLS = (
        run(vus=1, orders_per_s=500.0),
        run(vus=8, orders_per_s=400.0, lock_waiters_mean=6.0, **{"latency_ms.p95": 25.0}),
        run("atomic", vus=8, orders_per_s=2000.0, lock_waiters_mean=0.2, **{"latency_ms.p95": 4.0}),
        run("optimistic", vus=8, orders_per_s=1000.0, lock_waiters_mean=0.0),
        run("unsafe", vus=8, orders_per_s=9000.0),
    )

    def test_pessimistic_against_the_fastest_safe_strategy(self):
        text = readings.contention_reading(pd.DataFrame(self.CELLS), vus=8)
        assert text == (
            "At 8 VUs, **pessimistic** kept 6.0 sessions waiting on the row lock on average (75% of its users) and "
            "placed 400 orders/s with p95 25.00 ms. The fastest safe strategy, **atomic**, kept 0.2 sessions "
            "waiting on the row lock on average (2% of its users) and placed 2,000 orders/s with p95 4.00 ms "
            "(5.0x the orders/s)."
        )

    def test_without_lock_samples_or_other_strategies(self):
        cells = pd.DataFrame([run(vus=8, orders_per_s=400.0, lock_waiters_mean=float("nan"))])
        assert readings.contention_reading(cells, vus=8) == (
            "At 8 VUs, **pessimistic** placed 400 orders/s with p95 2.00 ms."
        )
        assert readings.contention_reading(cells, vus=32) == "No cell was measured at 32 VUs: nothing to read."


def setup(label, repeat=0, *, queue_size=0, user_rate=0.0, requests=100, created=20, p95=10.0, **columns):
    """A run of notebook 5.0's: one of its set-ups."""
    return {"label": label, "repeat": repeat, "param.queue_size": queue_size, "param.user_rate": user_rate,
            "requests": requests, "outcome.created": created, "by_outcome.created.p95": p95, "audit.ok": True,
            **columns}  # fmt: skip


class TestAdmissionReading:
    def test_each_set_up_turned_away_and_placed_against_the_one_without_admission_control(self):
        cells = pd.DataFrame(
            [
                setup("none", p95=200.0, **{"outcome.sold_out": 80}),
                setup("queue", queue_size=4, requests=1000, created=15, p95=50.0, **{"outcome.queue_full": 900}),
                setup("queue", 1, queue_size=4, requests=1000, created=25, p95=70.0, **{"outcome.queue_full": 700}),
                setup("queue + rate", queue_size=4, user_rate=2.0, requests=400, created=0, p95=float("nan"),
                      **{"outcome.queue_full": 100, "outcome.rate_limited": 200, "audit.ok": False}),
            ]
        )  # fmt: skip
        lines = readings.admission_reading(cells).splitlines()
        assert lines[0] == (
            "- **none**: 0% of 100 requests turned away at once (0 queue full, 0 rate limited); 20 orders placed, "
            "p95 200.00 ms."
        )
        assert lines[1] == (
            "- **queue**: 80% of 1,000 requests turned away at once (800 queue full, 0 rate limited); 20 orders "
            "placed, p95 60.00 ms (0.30x the p95 without admission control)."
        )
        assert lines[2] == (
            "- **queue + rate**: 75% of 400 requests turned away at once (100 queue full, 200 rate limited); no "
            "order placed."
        )
        assert lines[-1] == "**1 run(s) failed the audit** (queue + rate)."

    def test_without_a_set_up_free_of_admission_control_nothing_is_compared(self):
        text = readings.admission_reading(pd.DataFrame([setup("queue", queue_size=4)]))
        assert "without admission control" not in text
        assert text.endswith("Every run passed the audit: nothing oversold, no user above the limit.")


def answered(label, accept, *, spike=None, p95=10.0, requests=100, settled=None, **columns):
    """A run of notebook 6.0's."""
    return {"label": label, "param.accept": accept, "param.spike": spike, "latency_ms.p95": p95,
            "requests": requests, "meta.async.time_to_terminal_ms.p95": settled, "audit.ok": True,
            "audit.accepted_unsettled": 0, "audit.pending": 0, "audit.key_violations": 0, **columns}  # fmt: skip


class TestAsyncReading:
    def test_each_answer_against_the_synchronous_one_of_the_same_load(self):
        cells = pd.DataFrame(
            [
                answered("sync", "sync", p95=100.0, **{"outcome.created": 20}),
                answered("async", "async", p95=20.0, settled=900.0, **{"outcome.accepted": 50}),
                answered("spike, sync", "sync", spike="(100, 1.0)", p95=40.0, **{"outcome.created": 10}),
                answered("spike, async", "async", spike="(100, 1.0)", p95=80.0, settled=300.0,
                         **{"outcome.accepted": 100}),
            ]
        )  # fmt: skip
        lines = readings.async_reading(cells).splitlines()
        assert lines[0] == "- **sync**: answered within 100.00 ms (p95); 20% of 100 orders accepted or placed."
        assert lines[1] == (
            "- **async**: answered within 20.00 ms (p95), 5.0x faster than the synchronous answer; 50% of 100 "
            "orders accepted or placed, settled 900 ms after sending (p95)."
        )
        assert "- **spike, async**: answered within 80.00 ms (p95), 2.0x slower than the synchronous answer" in lines[3]
        assert lines[-1] == (
            "Every accepted order ended in exactly one terminal state, and every idempotency key had exactly one "
            "order (all runs). Every run passed the audit: nothing oversold, no user above the limit."
        )

    def test_unsettled_orders_and_duplicated_keys_are_said(self):
        cells = pd.DataFrame(
            [
                answered("sync", "sync", **{"audit.key_violations": 2}),
                answered("async", "async", **{"audit.accepted_unsettled": 3, "audit.pending": 1}),
            ]
        )
        last = readings.async_reading(cells).splitlines()[-1]
        assert last.startswith(
            "**3 accepted order(s) were not settled** (1 left pending), and **2 idempotency key(s) had other than "
            "one order**"
        )


def test_the_audit_sentence_names_the_runs_that_failed():
    cells = pd.DataFrame([run(), run("unsafe", **{"audit.ok": False}), run("unsafe", vus=4, **{"audit.ok": False})])
    assert analysis.audit_reading(cells) == "**2 run(s) failed the audit** (unsafe)."
    assert analysis.audit_reading(cells, by="label") == "**2 run(s) failed the audit** (unsafe, 1 VUs, unsafe, 4 VUs)."


def front(label, *, target="http", repeat=0, **columns):
    """A cell of the 7.0 notebook (Redis in front): an admission run by default (1000 requests in 5 s from 2 users:
    each sent 100 a second, with a limit of 10 on 2 processes)."""
    return {"label": label, "target": target, "repeat": repeat, "duration_s": 5.0, "param.users": 2,
            "param.admission": "local", "param.service_workers": 2, "param.user_rate": 10.0, "requests": 1000,
            "outcome.rate_limited": 800, "audit.ok": True, **columns}  # fmt: skip


def gate(strategy, sale, rps, transactions):
    return front(f"{strategy}, {sale}", target="db", strategy=strategy, rps=rps,
                 **{"latency_ms.p95": 2.0, "meta.pg_transactions.per_request": transactions})  # fmt: skip


class TestRedisFrontReading:
    def test_says_each_admissions_multiple_of_the_limit(self):
        cells = pd.DataFrame(
            [front("local, 2 processes"), front("Redis, 2 processes", **{"outcome.rate_limited": 900})]
        )
        text = readings.redis_front_reading(cells)
        assert "every user sending more orders than the limit times the processes" in text
        assert "- **local, 2 processes**: each user had 20.00 orders/s admitted, **2.00x** the limit of 10" in text
        assert "- **Redis, 2 processes**: each user had 10.00 orders/s admitted, **1.00x** the limit" in text
        assert "Every run passed the audit" in text

    def test_warns_where_the_users_sent_too_little_for_the_limit_to_bind(self):
        cells = pd.DataFrame([front("local", requests=150, **{"outcome.rate_limited": 0})])  # 15 a second, 2 x 10
        text = readings.redis_front_reading(cells)
        assert "In 1 run(s) the users sent fewer orders than the limit times the processes" in text
        assert "every user sending more" not in text

    def test_sets_the_gate_against_each_design_on_each_sale(self):
        cells = pd.DataFrame(
            [
                gate("redis_gate", "sale of 50", 9000.0, 0.004),
                gate("pessimistic", "sale of 50", 1000.0, 1.01),
                gate("redis_gate", "never sells out", 1200.0, 1.02),
                gate("batched", "never sells out", 2400.0, 0.03),
            ]
        )
        text = readings.redis_front_reading(cells)
        assert (
            "- *sale of 50*: **redis_gate** 9,000 requests/s, p95 2.00 ms, 0.004 PostgreSQL transactions a request; "
            "**pessimistic** 1,000 requests/s (the gate answered 9.0x as many), p95 2.00 ms, 1.010 PostgreSQL "
            "transactions a request." in text
        )
        assert "**batched** 2,400 requests/s (2.0x the gate's)" in text
        assert "Admission" not in text  # no admission run: no paragraph of it

    def test_reads_a_fault_and_a_failed_audit(self):
        fault = {"label": "redis-kill@2s:1s", "target": "http", "audit.ok": False, "fault.fault": "redis-kill@2s:1s",
                 "fault.server": "Redis", "fault.recovery_s": None}  # fmt: skip
        text = readings.redis_front_reading(pd.DataFrame([fault]))
        assert "- **redis-kill@2s:1s**: no request succeeded after the fault before the run ended." in text
        assert "**1 run(s) failed the audit** (redis-kill@2s:1s)." in text
