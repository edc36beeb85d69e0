"""The numbers the reports compute, from small hand-made tables of the shape `run_cells` returns."""

import json

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


class TestSweep:
    def test_summary_is_the_mean_of_the_repeats_and_marks_oversold_and_unsafe(self):
        cells = pd.DataFrame(
            [
                cell(vus=4, rps=100.0),
                cell(vus=4, rps=200.0),
                cell("unsafe", vus=4, **{"audit.ok": False}),
            ]
        )
        summary = analysis.sweep_summary(cells).set_index("strategy")
        assert summary.loc["pessimistic", "requests/s"] == 150.0
        assert summary.loc["pessimistic", "runs"] == 2
        assert summary.loc["pessimistic", "audit"] == "ok"
        assert summary.loc["unsafe (UNSAFE)", "audit"] == "OVERSOLD"

    def test_reading_names_the_best_safe_strategy_and_the_failed_audits(self):
        cells = pd.DataFrame(
            [
                cell(orders_per_s=100.0),
                cell("atomic", orders_per_s=450.0),
                cell("unsafe", orders_per_s=900.0, **{"audit.ok": False}),
            ]
        )
        text = analysis.sweep_reading(cells)
        assert "**atomic**" in text
        assert "**4.5x**" in text
        assert "1 run(s) failed the audit** (unsafe)" in text

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
        summary = analysis.sweep_summary(cells, reference)
        assert summary.columns[:5].tolist() == ["strategy", "VUs", "requests/s", "orders/s", "pgbench orders/s"]
        assert summary.loc[0, "driver / pgbench"] == 0.9  # the mean of the repeats against pgbench
        assert pd.isna(summary.loc[1, "pgbench orders/s"])  # no pgbench at that level: left empty
        assert "pgbench orders/s" not in analysis.sweep_summary(cells, pd.DataFrame())


class TestOutcomesAndAudit:
    def test_outcome_latency_from_the_tidy_columns(self):
        flat = _flat(
            {
                "outcomes": {"created": 3, "sold_out": 1},
                "by_outcome": {"created": {"count": 3, "p95": 2.0}, "sold_out": {"count": 1, "p95": 0.5}},
            }
        )
        table = analysis.outcome_latency(pd.DataFrame([{"label": "run", **flat}]))
        assert table.to_dict("records") == [
            {"run": "run", "outcome": "created", "count": 3, "p95": 2.0},
            {"run": "run", "outcome": "sold_out", "count": 1, "p95": 0.5},
        ]

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

    def test_rows_of_older_data_are_expanded_and_counts_are_whole(self):
        legacy = {
            "cell_id": "old",
            "rps": 10.0,
            "outcomes": json.dumps({"created": 3, "busy": 1}),
            "by_outcome": json.dumps({"created": {"count": 3, "p95": 2.0}}),
            "meta": json.dumps({"faults": [FAULT]}),
        }
        new = {"cell_id": "new", "rps": 20.0, **_flat({"outcomes": {"created": 5}, "meta": {}})}
        table = tidy(pd.DataFrame([legacy, new]))
        assert "outcomes" not in table
        assert "by_outcome" not in table
        assert outcome_counts(table).to_dict("records") == [{"created": 3, "busy": 1}, {"created": 5, "busy": 0}]
        assert table.loc[0, "by_outcome.created.p95"] == 2.0
        assert table.loc[0, "fault.recovery_s"] == 0.6
        assert "meta" not in table
