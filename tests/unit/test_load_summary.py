"""The summary's arithmetic on inputs whose answers are known by hand."""

import numpy as np
import pandas as pd
import pytest

from flashsale.load.summary import (
    AUDIT_KEYS,
    LATENCY_KEYS,
    OUTCOME_KEYS,
    SUMMARY_KEYS,
    latency_stats,
    render_text,
    summarize,
    summary_frame,
)
from flashsale.load.transactions import per_request

AUDIT_OK = {
    "ok": True,
    "total": 50,
    "remaining": 48,
    "orders": 2,
    "oversold": 0,
    "limit_violations": 0,
    "confirmed_quantity": 2,
}


def frame(latencies, outcomes, warmup=None):
    n = len(latencies)
    return pd.DataFrame(
        {
            "start_s": np.arange(n, dtype=float),
            "latency_ms": np.asarray(latencies, dtype=float),
            "outcome": pd.Categorical(outcomes),
            "status": np.zeros(n, dtype=np.uint16),
            "warmup": np.zeros(n, dtype=bool) if warmup is None else np.asarray(warmup),
        }
    )


def summary_of(records, **overrides):
    kwargs = {
        "target": "db",
        "strategy": "pessimistic",
        "model": "closed",
        "vus": 10,
        "rate": None,
        "think_ms": 100.0,
        "duration_s": 10.0,
        "audit": AUDIT_OK,
        "lock_waiters_mean": 0.5,
        "client_cpu_percent": 20.0,
        "meta": {"seed": 0},
    }
    return summarize(records, **{**kwargs, **overrides})


class TestLatencyStats:
    """Percentiles are exact: linear interpolation between the closest ranks of every value, as k6 does."""

    def test_one_to_a_hundred(self):
        stats = latency_stats(np.arange(1, 101))
        assert stats == pytest.approx(
            {"avg": 50.5, "min": 1.0, "p50": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "max": 100.0}
        )

    def test_interpolates_between_ranks(self):
        stats = latency_stats(np.array([10.0, 20.0, 30.0, 40.0]))
        assert stats["p50"] == pytest.approx(25.0)
        assert stats["p90"] == pytest.approx(37.0)  # rank 2.7: 30 + 0.7 * 10

    def test_a_single_value_is_every_percentile(self):
        assert set(latency_stats(np.array([7.5])).values()) == {7.5}

    def test_no_values(self):
        assert latency_stats(np.array([])) == dict.fromkeys(LATENCY_KEYS)
        assert latency_stats(np.array([]), OUTCOME_KEYS)["count"] == 0

    def test_order_of_input_does_not_matter(self):
        values = np.random.default_rng(1).exponential(5.0, size=1001)
        assert latency_stats(values) == latency_stats(values[::-1])
        assert latency_stats(values)["p50"] == pytest.approx(float(np.sort(values)[500]))


class TestSummarize:
    def test_has_exactly_the_documented_keys(self):
        summary = summary_of(frame([1.0, 2.0], ["created", "sold_out"]))
        assert tuple(summary) == SUMMARY_KEYS
        assert tuple(summary["latency_ms"]) == LATENCY_KEYS
        assert tuple(summary["audit"]) == AUDIT_KEYS
        assert tuple(summary["by_outcome"]["created"]) == OUTCOME_KEYS

    def test_counts_rates_and_goodput(self):
        records = frame([1.0] * 30 + [5.0] * 10, ["sold_out"] * 30 + ["created"] * 10)
        summary = summary_of(records, duration_s=4.0)
        assert summary["requests"] == 40
        assert summary["rps"] == pytest.approx(10.0)
        assert (summary["orders"], summary["orders_per_s"]) == (10, pytest.approx(2.5))
        assert summary["outcomes"] == {"sold_out": 30, "created": 10}
        assert list(summary["outcomes"]) == ["sold_out", "created"]  # most frequent first

    def test_latency_split_by_outcome(self):
        """Slow writes behind fast refusals: the overall p95 hides them, the per-outcome line does not."""
        records = frame([1.0] * 95 + [300.0] * 5, ["sold_out"] * 95 + ["created"] * 5)
        summary = summary_of(records)
        assert summary["by_outcome"]["created"]["p95"] == pytest.approx(300.0)
        assert summary["by_outcome"]["sold_out"]["max"] == pytest.approx(1.0)
        assert summary["latency_ms"]["p50"] == pytest.approx(1.0)
        assert summary["latency_ms"]["avg"] == pytest.approx((95 + 1500) / 100)

    def test_warmup_requests_are_left_out(self):
        records = frame([100.0, 100.0, 1.0, 2.0], ["created"] * 4, warmup=[True, True, False, False])
        summary = summary_of(records, duration_s=2.0)
        assert summary["requests"] == 2
        assert summary["latency_ms"]["max"] == pytest.approx(2.0)

    def test_errors_are_listed_by_class(self):
        summary = summary_of(frame([1.0, 2.0, 3.0], ["created", "PoolTimeout", "http_500"]))
        assert summary["meta"]["errors"] == {"PoolTimeout": 1, "http_500": 1}

    def test_no_requests(self):
        summary = summary_of(frame([], []))
        assert summary["requests"] == 0
        assert summary["latency_ms"]["p95"] is None
        assert summary["outcomes"] == {}

    def test_warns_when_the_client_is_the_bottleneck(self):
        assert summary_of(frame([1.0], ["created"]), client_cpu_percent=95.0)["meta"]["warnings"]
        assert summary_of(frame([1.0], ["created"]), client_cpu_percent=50.0)["meta"]["warnings"] == []

    def test_a_failed_audit_is_loud(self):
        audit = {**AUDIT_OK, "ok": False, "oversold": 3}
        summary = summary_of(frame([1.0], ["created"]), audit=audit, meta={"audit_problems": ["OVERSOLD by 3"]})
        assert summary["audit"]["ok"] is False
        assert summary["meta"]["warnings"][0] == "AUDIT FAILED: OVERSOLD by 3"
        text = render_text(summary)
        assert "audit" in text
        assert "FAILED" in text
        assert "OVERSOLD by 3" in text


class TestPresentation:
    def test_text_reads_like_k6(self):
        records = frame([1.0, 2.0, 3.0, 4.0], ["created", "created", "sold_out", "sold_out"])
        text = render_text(summary_of(records, duration_s=2.0))
        assert "closed model: 10 VUs, think 100 ms" in text
        assert "requests" in text
        assert "2.0/s" in text
        assert "p(95)=" in text
        assert "{ created }" in text
        assert "audit" in text

    def test_postgresql_transactions_per_request(self):
        records = frame([1.0, 2.0, 3.0, 4.0], ["created", "created", "sold_out", "sold_out"])
        pg = per_request(3, 4)
        assert pg == {"total": 3, "requests": 4, "per_request": 0.75}
        text = render_text(summary_of(records, meta={"pg_transactions": pg}))
        assert "postgresql transactions .......: 3 (0.75 per request, warmup included)" in text
        assert "postgresql transactions" not in render_text(
            summary_of(records, meta={"pg_transactions": per_request(None, 4)})
        )
        assert per_request(5, 0)["per_request"] is None  # no request: no ratio

    def test_one_row_frame(self):
        row = summary_frame(summary_of(frame([1.0, 2.0], ["created", "sold_out"])))
        assert len(row) == 1
        assert row.loc[0, "latency_ms.p95"] == pytest.approx(1.95)
        assert row.loc[0, "by_outcome.created.count"] == 1
        assert row.loc[0, "audit.ok"]

    @pytest.mark.parametrize(
        ("hinted", "line"),
        [
            (
                {"honoured": False, "max_s": None, "service_refusals": 13000, "service_refusals_per_s": 6500.0,
                 "waits": 0, "waited_s": 0.0},
                "13000    6500.0/s  (Retry-After not honoured)",
            ),
            (
                {"honoured": True, "max_s": 5.0, "service_refusals": 300, "service_refusals_per_s": 150.0,
                 "waits": 290, "waited_s": 281.5},
                "300      150.0/s  (Retry-After honoured: 290 waits, 281.5 s in all, at most 5 s each)",
            ),
        ],
    )  # fmt: skip
    def test_refusals_for_now_and_the_retry_after_waits_have_a_line(self, hinted, line):
        text = render_text(summary_of(frame([1.0], ["created"]), meta={"retry_after": hinted}))
        assert f"refusals for now (429, 503) ...: {line}" in text

    def test_no_refusals_for_now_and_no_honouring_no_line(self):
        hinted = {"honoured": False, "service_refusals": 0, "service_refusals_per_s": 0.0, "waits": 0, "waited_s": 0}
        text = render_text(summary_of(frame([1.0], ["created"]), meta={"retry_after": hinted}))
        assert "refusals for now" not in text
