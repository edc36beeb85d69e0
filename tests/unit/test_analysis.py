"""The numbers the reports compute, from small hand-made tables of the shape `run_cells` returns."""

import pandas as pd
import pytest

from flashsale.experiments import analysis
from flashsale.experiments.cells import _flat, outcome_counts, tidy


def cell(strategy="pessimistic", vus=1, **columns):
    return {
        "label": f"{strategy}, {vus} VUs",
        "strategy": strategy,
        "vus": vus,
        "safe": strategy != "unsafe",
        "rps": 100.0,
        "orders_per_s": 100.0,
        "latency_ms.avg": 1.0,
        "latency_ms.p50": 1.0,
        "latency_ms.p95": 2.0,
        "latency_ms.p99": 3.0,
        "latency_ms.max": 4.0,
        "lock_waiters_mean": 0.0,
        "client_cpu_percent": 10.0,
        "audit.ok": True,
        **columns,
    }


FAULT = {
    "fault": "db-restart@1s",
    "injected_s": 1.0,
    "down_s": 1.0,
    "up_s": 1.4,
    "unavailable_s": 0.4,
    "first_failure_s": 1.01,
    "last_failure_s": 1.5,
    "recovered_s": 1.6,
    "recovery_s": 0.6,
    "lag_s": 0.2,
    "failures": 12,
    "requests": 20,
    "errors": {"unavailable": 10, "OperationalError": 2},
    "failure_latency_ms": {"p50": 1.5, "p99": 9.0, "max": 12.0},
}


class TestThinkTime:
    def test_the_bound_is_users_over_think_time_plus_latency(self):
        assert analysis.think_time_bound(10, 100.0, 8.4) == pytest.approx(10 / 0.1084)

    def test_a_run_within_three_percent_is_at_the_bound(self):
        check = analysis.think_time_check(pd.Series(cell(rps=91.0, **{"latency_ms.avg": 9.0})), vus=10, think_ms=100)
        assert check.bound == pytest.approx(10 / 0.109)
        assert check.at_bound
        assert "within 3%" in analysis.think_time_verdict(check)

    def test_a_run_far_below_is_not(self):
        check = analysis.BoundCheck(bound=100.0, measured=80.0)
        assert check.share == pytest.approx(0.8)
        assert not check.at_bound
        assert "got in the way" in analysis.think_time_verdict(check)


class TestRuleOfThumb:
    def cells(self, busy_orders_per_s):
        return pd.DataFrame(
            [
                cell(vus=1, orders_per_s=400.0, **{"latency_ms.p50": 2.0}),
                cell(vus=32, orders_per_s=busy_orders_per_s),
                cell("atomic", vus=32, orders_per_s=5000.0),
            ]
        )

    def test_predicts_one_over_the_hold_time_and_holds_below_it(self):
        rule = analysis.rule_of_thumb(self.cells(480.0), vus=32)
        assert (rule.hold_ms, rule.predicted, rule.measured_alone) == (2.0, 500.0, 400.0)
        assert rule.ratio == pytest.approx(0.96)
        assert rule.holds
        assert "holds" in rule.verdict()
        assert rule.table()["quantity"].tolist()[-1] == "measured at 32 VUs"

    def test_well_above_the_ceiling_the_hold_time_was_overestimated(self):
        rule = analysis.rule_of_thumb(self.cells(800.0), vus=32)
        assert not rule.holds
        assert "overestimates" in rule.verdict()

    def test_without_the_busy_cell_there_is_nothing_to_check(self):
        rule = analysis.rule_of_thumb(self.cells(480.0), vus=64)
        assert rule.ratio is None
        assert rule.holds is None
        assert len(rule.table()) == 3
        assert "not measured" in rule.verdict()

    def test_lock_hold_ceilings_only_for_strategies_that_time_their_lock(self):
        cells = pd.DataFrame(
            [
                cell(vus=1, **{"meta.lock_hold_ms": 0.5}),
                cell(vus=1, **{"meta.lock_hold_ms": 1.5}),
                cell(vus=8, **{"meta.lock_hold_ms": 4.0}),
                cell("atomic", vus=1, **{"meta.lock_hold_ms": None}),
            ]
        )
        ceilings = analysis.lock_hold_ceilings(cells)
        assert ceilings.to_dict("records") == [
            {"strategy": "pessimistic", "vus": 1, "hold_ms": 1.0, "ceiling": 1000.0},
            {"strategy": "pessimistic", "vus": 8, "hold_ms": 4.0, "ceiling": 250.0},
        ]
        assert analysis.lock_hold_ceilings(pd.DataFrame([cell()])).empty


class TestRepeats:
    def test_spread_is_the_median_the_range_and_the_runs_per_group_in_order_seen(self):
        cells = pd.DataFrame(
            [cell("b", rps=9.0), cell("a", rps=1.0), cell("a", rps=2.0), cell("a", rps=30.0), cell("b", rps=None)]
        )
        assert analysis.spread(cells, "strategy", "rps").to_dict("records") == [
            {"strategy": "b", "median": 9.0, "min": 9.0, "max": 9.0, "n": 1},
            {"strategy": "a", "median": 2.0, "min": 1.0, "max": 30.0, "n": 3},  # the median, not the mean (11)
        ]

    def test_median_range_reads_median_then_min_to_max(self):
        assert analysis.median_range([3.0, 1.0, 10.0]) == "3.00 (1.00–10.00)"
        assert analysis.median_range([1200.0, 1000.0, None], "{:,.0f}") == "1,100 (1,000–1,200)"
        assert analysis.median_range([5.0]) == "5.00"  # one run: no range to show
        assert analysis.median_range([None]) == "–"

    def test_medians_and_first_runs_per_label(self):
        cells = pd.DataFrame([cell(rps=10.0, repeat=0), cell(rps=30.0, repeat=1), cell(rps=20.0, repeat=2)])
        typical = analysis.medians(cells)
        assert typical.loc["pessimistic, 1 VUs", "rps"] == 20.0
        assert typical.loc["pessimistic, 1 VUs", "runs"] == 3
        assert analysis.first_runs(cells).loc["pessimistic, 1 VUs", "rps"] == 10.0

    def test_over_repeats_is_one_column_per_label_with_its_runs(self):
        cells = pd.DataFrame([cell(rps=10.0), cell(rps=30.0), cell(rps=20.0), cell("atomic", rps=5.0)])
        columns = analysis.over_repeats(cells, lambda row: [row["rps"], row["rps"] / 100], ["RPS", "share"],
                                        shares=("share",))  # fmt: skip
        assert columns == {
            "this project: pessimistic, 1 VUs": ["20.00 (10.00–30.00)", "20.0% (10.0%–30.0%)", 3],
            "this project: atomic, 1 VUs": ["5.00", "5.0%", 1],
        }


class TestSweep:
    def test_summary_is_the_median_of_the_repeats_with_ranges_and_marks_oversold_and_unsafe(self):
        cells = pd.DataFrame(
            [
                cell(vus=4, rps=100.0, orders_per_s=100.0, **{"latency_ms.max": 9.0}),
                cell(vus=4, rps=200.0, orders_per_s=200.0, **{"latency_ms.max": 5.0}),
                cell(vus=4, rps=900.0, orders_per_s=900.0, **{"latency_ms.max": 7.0}),
                cell("unsafe", vus=4, **{"audit.ok": False}),
            ]
        )
        summary = analysis.concurrency_summary(cells).set_index("strategy")
        assert summary.loc["pessimistic", "requests/s"] == 200.0  # the median (the mean is 400)
        assert summary.loc["pessimistic", "orders/s"] == 200.0
        assert summary.loc["pessimistic", "orders/s range"] == "100–900"
        assert summary.loc["pessimistic", "max"] == 7.0
        assert summary.loc["pessimistic", "p95 range"] == "2.00"  # one value: no range
        assert summary.loc["pessimistic", "runs"] == 3
        assert summary.loc["pessimistic", "audit"] == "ok"
        assert summary.loc["unsafe (UNSAFE)", "audit"] == "OVERSOLD"
        assert list(summary.columns[:5]) == ["VUs", "requests/s", "orders/s", "orders/s range", "p50"]

    def test_reading_names_the_best_safe_strategy_and_the_failed_audits(self):
        cells = pd.DataFrame(
            [
                cell(orders_per_s=100.0),
                cell("atomic", orders_per_s=450.0),
                cell("unsafe", orders_per_s=900.0, **{"audit.ok": False}),
            ]
        )
        text = analysis.best_strategy_reading(cells)
        assert "**atomic**" in text
        assert "**4.5x**" in text
        assert "1 run(s) failed the audit** (unsafe)" in text

    def test_the_peak_is_the_best_level_by_the_median_of_its_repeats(self):
        """One lucky run does not make a peak: at 8 VUs the median (300) beats 4 VUs' (200) despite its 1000."""
        cells = pd.DataFrame(
            [
                *(cell(vus=1, orders_per_s=v) for v in (90.0, 100.0, 110.0)),
                *(cell("atomic", vus=4, orders_per_s=v) for v in (100.0, 200.0, 1000.0)),
                *(cell("atomic", vus=8, orders_per_s=v) for v in (290.0, 300.0, 310.0)),
            ]
        )
        peaks = analysis.concurrency_peaks(cells).set_index("strategy")
        assert peaks.loc["atomic", "vus"] == 8
        assert peaks.loc["atomic", ["median", "min", "max", "n"]].tolist() == [300.0, 290.0, 310.0, 3]
        text = analysis.best_strategy_reading(cells)
        assert "peaks at 300 orders/s at 8 VUs (range 290–310 over 3 runs)" in text
        assert "**3.0x**" in text

    def test_driver_against_pgbench_where_both_were_measured(self):
        cells = pd.DataFrame([cell(vus=1, orders_per_s=90.0), cell(vus=2, orders_per_s=150.0)])
        reference = pd.DataFrame(
            [
                {"strategy": "pessimistic", "clients": 1, "orders_per_s": 100.0},
                {"strategy": "pessimistic", "clients": 4, "orders_per_s": 300.0},
            ]
        )
        ratio = analysis.driver_vs_pgbench(cells, reference)
        assert ratio.to_dict("records") == [
            {
                "strategy": "pessimistic",
                "vus": 1,
                "driver orders/s": 90.0,
                "pgbench orders/s": 100.0,
                "driver / pgbench": 0.9,
            }
        ]
        assert analysis.driver_vs_pgbench(cells, pd.DataFrame()).empty

    def test_summary_carries_pgbench_beside_the_driver(self):
        cells = pd.DataFrame([cell(vus=1, orders_per_s=80.0), cell(vus=1, orders_per_s=100.0), cell(vus=2)])
        reference = pd.DataFrame([{"strategy": "pessimistic", "clients": 1, "orders_per_s": 100.0}])
        summary = analysis.concurrency_summary(cells, reference)
        assert summary.columns[:6].tolist() == [
            "strategy", "VUs", "requests/s", "orders/s", "orders/s range", "pgbench orders/s"
        ]  # fmt: skip
        assert summary.loc[0, "driver / pgbench"] == 0.9  # the median of the repeats against pgbench
        assert pd.isna(summary.loc[1, "pgbench orders/s"])  # no pgbench at that level: left empty
        assert "pgbench orders/s" not in analysis.concurrency_summary(cells, pd.DataFrame())


class TestOutcomesAndAudit:
    def test_outcome_latency_from_the_tidy_columns(self):
        flat = _flat(
            {
                "outcomes": {"created": 3, "sold_out": 1},
                "by_outcome": {"created": {"count": 3, "p95": 2.0}, "sold_out": {"count": 1, "p95": 0.5}},
            }
        )
        table = analysis.outcome_latency_table(pd.DataFrame([{"label": "run", **flat}]))
        assert table.to_dict("records") == [
            {"run": "run", "outcome": "created", "count": 3, "p95": 2.0},
            {"run": "run", "outcome": "sold_out", "count": 1, "p95": 0.5},
        ]

    def test_audit_table_numbers_the_repeats_from_one(self):
        cells = pd.DataFrame([cell(repeat=0), cell(repeat=1)])
        table = analysis.audit_table(cells, ("ok",))
        assert table.columns.tolist() == ["label", "repeat", "ok"]
        assert table["repeat"].tolist() == [1, 2]
        assert "repeat" not in analysis.audit_table(cells.iloc[:1], ("ok",))  # one run: nothing to number

    def test_audit_table_names_failures(self):
        cells = pd.DataFrame(
            [cell(**{"audit.total": 5, "audit.oversold": 0}), cell(**{"audit.ok": False, "audit.oversold": 2})]
        )
        table = analysis.audit_table(cells, ("ok", "oversold", "limit_violations"))
        assert table.columns.tolist() == ["label", "ok", "oversold"]
        assert table["ok"].tolist() == ["ok", "FAILED"]


class TestFaults:
    def frame(self, report=FAULT):
        return pd.DataFrame([{"label": "db-restart@1s", **_flat({"meta": {"faults": [report]}})}])

    def test_the_report_comes_back_from_its_tidy_columns(self):
        (row,) = self.frame().to_dict("records")
        assert row["fault.errors.unavailable"] == 10
        assert analysis.fault_of(pd.Series(row)) == FAULT

    def test_timings_table(self):
        (row,) = analysis.fault_timings(self.frame()).to_dict("records")
        assert (row["injected"], row["recovery"], row["lag"], row["failures"]) == (1.0, 0.6, 0.2, 12)
        assert row["failures by kind"] == "unavailable: 10, OperationalError: 2"
        assert row["failure p99 (ms)"] == 9.0

    def test_reading_says_how_long_and_how_fast(self):
        text = analysis.fault_reading(self.frame())
        assert "down 0.40 s; 12 requests failed" in text
        assert "0.60 s after the fault" in text

    def test_a_run_that_never_recovered(self):
        text = analysis.fault_reading(self.frame({**FAULT, "recovery_s": None, "recovered_s": None}))
        assert "no request succeeded after the fault" in text


SUMMARY = {
    "rps": 10.0,
    "latency_ms": {"p95": 2.0},
    "outcomes": {"created": 3},
    "by_outcome": {"created": {"count": 3, "p95": 2.0}},
    "audit": {"ok": True},
    "meta": {"lock_hold_ms": 0.7, "warnings": ["a", "b"], "faults": [FAULT], "locust_stats": [{"x": 1}]},
}


class TestTidyCells:
    def test_flat_columns_are_plain_values(self):
        flat = _flat(SUMMARY)
        assert flat["outcome.created"] == 3
        assert flat["by_outcome.created.p95"] == 2.0
        assert flat["meta.lock_hold_ms"] == 0.7
        assert flat["meta.warnings"] == "a; b"
        assert flat["fault.failure_latency_ms.p50"] == 1.5
        assert not any(k.startswith("meta.locust_stats") for k in flat)
        assert "meta" not in flat  # no JSON text: the whole summary stays in the requests file's metadata

    def test_counts_are_whole_and_zero_where_a_run_had_none(self):
        first = {"cell_id": "first", "rps": 10.0, **_flat({"outcomes": {"created": 3, "busy": 1}, "meta": {}})}
        second = {"cell_id": "second", "rps": 20.0, **_flat({"outcomes": {"created": 5}, "meta": {}})}
        table = tidy(pd.DataFrame([first, second]))
        assert outcome_counts(table).to_dict("records") == [{"created": 3, "busy": 1}, {"created": 5, "busy": 0}]
        assert table["outcome.busy"].dtype == int


def run(repeat=0, label="never sells out", **columns):
    """A seed-scenario run of either client, in the runner's column names."""
    return {"cell_id": f"c{repeat}", "label": label, "repeat": repeat, "rps": 90.0, "requests": 900,
            "latency_ms.p50": 2.0, "latency_ms.p95": 4.0, "latency_ms.p99": 8.0, "latency_ms.max": 20.0,
            **columns}  # fmt: skip


class TestClients:
    def test_side_by_side_pairs_each_runner_run_with_its_k6_run(self):
        runner = pd.DataFrame([run(0, **{"latency_ms.p50": 2.0}), run(1, **{"latency_ms.p50": 3.0}),
                               run(2, **{"latency_ms.p50": 2.2}), run(3, label="sells out")])  # fmt: skip
        k6 = pd.DataFrame([run(0, **{"latency_ms.p50": 2.0}), run(1, **{"latency_ms.p50": 2.0}),
                           run(2, **{"latency_ms.p50": 2.0})])  # fmt: skip
        side = analysis.clients_side_by_side(runner, k6).set_index("metric")
        assert side.index.tolist() == ["RPS", "requests", "p50", "p95", "p99", "max"]
        assert side.loc["p50"].tolist() == ["2.20 (2.00–3.00)", "2.00", "1.10 (1.00–1.50)"]
        assert side.loc["requests", "k6"] == "900"

    def test_reading_says_whether_p50_and_p95_agree_within_ten_percent(self):
        k6 = pd.DataFrame([run(r) for r in range(3)])
        close = pd.DataFrame([run(r, **{"latency_ms.p95": 4.3}) for r in range(3)])  # 7.5 % above k6
        assert "**agree within 10%**" in analysis.clients_reading(close, k6)
        apart = pd.DataFrame([run(r, **{"latency_ms.p95": 4.5}) for r in range(3)])  # 12.5 % above k6
        text = analysis.clients_reading(apart, k6)
        assert "**do not agree within 10%** on p95" in text
        assert "p95 1.12x" in text
        assert "No pair" in analysis.clients_reading(apart, k6.iloc[:0])


class TestHeadlineTables:
    def test_baseline_side_by_side_is_the_median_and_range_of_each_label_with_p99(self):
        rows = [
            {**cell(), "label": "never sells out", "rps": rps, "requests": 900, "latency_ms.avg": 2.0,
             "latency_ms.p90": 3.0, "orders": 900, "created_p95_ms": 2.0}
            for rps in (91.0, 89.0, 90.0)
        ]  # fmt: skip
        side = analysis.baseline_side_by_side(pd.DataFrame(rows)).set_index("metric")
        ours = side["this project: never sells out"]
        assert ours["RPS"] == "90.00 (89.00–91.00)"
        assert ours["p99"] == "3.00"
        assert ours["max"] == "4.00"
        assert ours["runs"] == 3
        assert side.loc["p95", "seed devlog 02"] == 13.36
        assert pd.isna(side.loc["p99", "seed devlog 02"])  # not published

    def test_flashdeal_tables_carry_p99_and_max_over_the_repeats(self):
        rows = [
            {**cell(), "label": "sync", "requests": 100, "duration_s": 1.0, "latency_ms.avg": 1.0,
             "latency_ms.p99": p99, "outcome.created": 50, "outcome.sold_out": 50}
            for p99 in (3.0, 5.0, 4.0)
        ]  # fmt: skip
        admission = analysis.flashdeal_admission(pd.DataFrame(rows)).set_index("metric")["this project: sync"]
        assert admission["p99"] == "4.00 (3.00–5.00)"
        assert admission["max"] == "4.00"
        assert admission["queue full"] == "0"
        assert admission["runs"] == 3
        answers = analysis.flashdeal_async(pd.DataFrame(rows)).set_index("metric")["this project: sync"]
        assert answers["answer p99"] == "4.00 (3.00–5.00)"
        assert answers["answer max"] == "4.00"
        assert answers["accepted or placed"] == "50.0%"


def front(label, *, target="http", repeat=0, **columns):
    """A cell of the 7.0 notebook (Redis in front): an admission run by default."""
    return {"label": label, "target": target, "repeat": repeat, "cell_id": f"{label}-{repeat}", "duration_s": 5.0,
            "param.users": 2, "param.admission": "local", "param.service_workers": 2, "param.user_rate": 10.0,
            "requests": 1000, "outcome.rate_limited": 800, "audit.ok": True, **columns}  # fmt: skip


def gate(strategy, sale, *, repeat=0, rps=1000.0, **columns):
    return front(f"{strategy}, {sale}", target="db", repeat=repeat, strategy=strategy, rps=rps, orders_per_s=rps,
                 **{"latency_ms.p50": 1.0, "latency_ms.p95": 2.0, "meta.pg_transactions.per_request": 1.0,
                    **columns})  # fmt: skip


class TestRedisFront:
    def test_the_parts_are_told_by_target_and_fault(self):
        cells = pd.DataFrame(
            [front("local"), gate("redis_gate", "sale of 50"), front("redis-kill@2s:1s", **{"fault.fault": "x"})]
        )
        parts = analysis.redis_front_parts(cells)
        assert (list(parts.admission["label"]), list(parts.gate["label"]), list(parts.faulted["label"])) == (
            ["local"], ["redis_gate, sale of 50"], ["redis-kill@2s:1s"]
        )  # fmt: skip
        assert analysis.redis_front_parts(cells.drop(columns="fault.fault")).faulted.empty  # no fault ran

    def test_admitted_orders_per_user_are_every_answer_but_rate_limited(self):
        cells = pd.DataFrame(
            [front("local"), front("redis", **{"param.admission": "redis", "outcome.rate_limited": 900})]
        )
        runs = analysis.admitted_per_user(cells).set_index("label")
        # 1000 requests in 5 s from 2 users: each sent 100 a second; 200 and 100 of them were not rate limited
        assert runs["offered"].tolist() == [100.0, 100.0]
        assert runs["admitted"].tolist() == [20.0, 10.0]
        assert runs["times"].tolist() == [2.0, 1.0]  # twice the limit on two processes, once when shared
        assert runs.loc["redis", "processes"] == 2

    def test_the_admission_table_gives_the_median_and_range_of_the_repeats(self):
        cells = pd.DataFrame(
            [front("local", repeat=r, **{"outcome.rate_limited": n}) for r, n in enumerate([800, 780, 850])]
        )
        (row,) = analysis.admission_per_user_table(cells).to_dict("records")
        assert row["admitted per user (orders/s)"] == "20.00 (15.00–22.00)"
        assert row["admitted / limit"] == "2.00 (1.50–2.20)"
        assert row["runs"] == 3

    def test_the_gate_table_sets_each_strategy_beside_its_reference_line(self):
        cells = pd.DataFrame(
            [
                gate("redis_gate", "sale of 50", rps=9000.0, **{"meta.pg_transactions.per_request": 0.004}),
                gate("redis_gate", "sale of 50", repeat=1, rps=11000.0, **{"meta.pg_transactions.per_request": 0.006}),
                gate("pessimistic", "never sells out", **{"audit.ok": False}),
            ]
        )
        reference = pd.DataFrame(
            [
                {
                    "cell_id": "redis_gate, sale of 50-0",
                    "strategy": "redis_gate",
                    "tps": 40000.0,
                    "tool": "redis-benchmark",
                }
            ]
        )
        rows = analysis.gate_comparison(cells, reference).set_index("strategy")
        assert rows.loc["redis_gate", "sale"] == "sale of 50"
        assert rows.loc["redis_gate", "requests/s"] == "10,000 (9,000–11,000)"
        assert rows.loc["redis_gate", "PG transactions / request"] == "0.005 (0.004–0.006)"
        assert rows.loc["redis_gate", "reference line (requests/s)"] == "40,000 (redis-benchmark)"
        assert (rows.loc["pessimistic", "reference line (requests/s)"], rows.loc["pessimistic", "audit"]) == (
            "–",
            "FAILED",
        )

    def test_a_redis_fault_reads_as_redis_down(self):
        frame = pd.DataFrame(
            [{"label": "redis-kill@1s:1s", **_flat({"meta": {"faults": [{**FAULT, "server": "Redis"}]}})}]
        )
        text = analysis.fault_reading(frame)
        assert "Redis was down 0.40 s" in text
        assert "0.20 s after Redis was up" in text
        assert "the database was down" in analysis.fault_reading(TestFaults().frame())
