"""Fault specifications, and the outage and recovery read from records whose answers are known by hand."""

import numpy as np
import pandas as pd
import pytest

from flashsale.load import LoadConfig
from flashsale.load.faults import Fault, FaultEvent, fault_report, outage_mask
from flashsale.load.summary import render_text, summarize


class TestFaultSpec:
    @pytest.mark.parametrize(
        ("text", "fault"),
        [
            ("db-restart@10s", Fault("db-restart", 10.0)),
            ("db-restart@1500ms", Fault("db-restart", 1.5)),
            ("db-stop@10s:3s", Fault("db-stop", 10.0, 3.0)),
            (" db-stop@2:250ms ", Fault("db-stop", 2.0, 0.25)),
            ("redis-kill@10s", Fault("redis-kill", 10.0)),
            ("redis-kill@10s:3s", Fault("redis-kill", 10.0, 3.0)),
            ("redis-restart@500ms", Fault("redis-restart", 0.5)),
        ],
    )
    def test_parses(self, text, fault):
        assert Fault.parse(text) == fault
        assert Fault.parse(str(fault)) == fault

    @pytest.mark.parametrize(
        ("text", "canonical", "server"),
        [
            ("db-stop@1000ms:1s", "db-stop@1s:1s", "database"),
            ("redis-kill@1s", "redis-kill@1s", "Redis"),
            ("redis-kill@1s:0s", "redis-kill@1s", "Redis"),
            ("redis-kill@1s:1500ms", "redis-kill@1s:1.5s", "Redis"),
            ("redis-restart@2s", "redis-restart@2s", "Redis"),
        ],
    )
    def test_is_written_back_canonically_and_knows_its_server(self, text, canonical, server):
        fault = Fault.parse(text)
        assert (str(fault), fault.server) == (canonical, server)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("db-restart", "not a fault"),
            ("db-nap@1s", "unknown fault"),
            ("db-stop@1s", "how long the database stays down"),
            ("db-restart@1s:2s", "use db-stop"),
            ("redis-restart@1s:2s", "use redis-kill@T:DURATION"),
            ("redis-crash@1s", "unknown fault"),
            ("redis-kill@-1s", "0 or more"),
            ("db-restart@soon", "not a duration"),
            ("db-stop@-1s:1s", "0 or more"),
        ],
    )
    def test_refuses_with_a_reason(self, text, message):
        with pytest.raises(ValueError, match=message):
            Fault.parse(text)

    def test_the_config_keeps_faults_in_their_canonical_form(self):
        config = LoadConfig(duration_s=5, faults=("db-stop@1000ms:1s",))
        assert config.faults == ("db-stop@1s:1s",)
        assert config.fault_list == [Fault("db-stop", 1.0, 1.0)]
        assert LoadConfig(duration_s=5, faults="db-restart@1s").faults == ("db-restart@1s",)

    def test_a_fault_after_the_run_is_refused(self):
        with pytest.raises(ValueError, match="after the run's end"):
            LoadConfig(duration_s=5, warmup_s=1, faults=("db-restart@6s",))


def records(rows):
    """rows: (start_s, latency_ms, outcome, status)."""
    start, latency, outcome, status = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "start_s": np.asarray(start, dtype=float),
            "latency_ms": np.asarray(latency, dtype=float),
            "outcome": pd.Categorical(outcome),
            "status": np.asarray(status, dtype=np.uint16),
            "warmup": np.zeros(len(rows), dtype=bool),
        }
    )


# Injected at 2.0 s, the server down at 2.1 s and up again at 3.0 s.
EVENT = FaultEvent("db-stop@2s:0.9s", 2.0, injected_s=2.0, down_s=2.1, up_s=3.0)
RUN = records(
    [
        (1.0, 10, "created", 201),  # before: ends 1.01
        (1.99, 20, "created", 201),  # in flight at the injection, ends 2.01: not a recovery (before up_s)
        (1.995, 100, "http_500", 500),  # ends 2.095: a failure in the window
        (2.2, 1, "unavailable", 503),  # ends 2.201
        (2.5, 3, "unavailable", 503),  # ends 2.503
        (2.9, 150, "unavailable", 503),  # ends 3.05: the server is up, but this one still failed
        (3.05, 50, "sold_out", 409),  # ends 3.1: the first answer of the database after it was up
        (3.2, 5, "created", 201),
        (4.0, 7, "unavailable", 503),  # after the recovery: not part of this outage
    ]
)


class TestFaultReport:
    def test_recovery_is_the_first_success_after_the_server_is_back(self):
        (report,) = fault_report(RUN, [EVENT])
        assert report["recovered_s"] == pytest.approx(3.1)
        assert report["recovery_s"] == pytest.approx(1.1)
        assert report["lag_s"] == pytest.approx(0.1)
        assert report["unavailable_s"] == pytest.approx(0.9)

    def test_counts_the_failures_of_the_outage_by_outcome_and_status(self):
        (report,) = fault_report(RUN, [EVENT])
        assert report["requests"] == 5  # ends in [2.0, 3.1): the in-flight order, the 500, three 503s
        assert report["failures"] == 4
        assert report["errors"] == {"unavailable": 3, "http_500": 1}
        assert report["statuses"] == {"500": 1, "503": 3}
        assert report["first_failure_s"] == pytest.approx(2.095)
        assert report["last_failure_s"] == pytest.approx(3.05)
        assert report["failure_latency_ms"]["max"] == 150
        assert report["failure_latency_ms"]["p50"] == pytest.approx(51.5)

    def test_the_outage_mask_marks_the_requests_between_injection_and_recovery(self):
        (report,) = fault_report(RUN, [EVENT])
        assert list(outage_mask(RUN, [report])) == [False, True, True, True, True, True, False, False, False]

    def test_an_accepted_order_is_a_recovery(self):
        """Under `serve --accept async` the first success after the outage is a 202: the order was stored."""
        accepting = records([(2.5, 1, "unavailable", 503), (3.2, 4, "accepted", 202), (3.3, 1, "busy", 503)])
        (report,) = fault_report(accepting, [EVENT])
        assert report["recovered_s"] == pytest.approx(3.204)
        assert report["errors"] == {"unavailable": 1}

    def test_no_recovery_before_the_end(self):
        failing = records([(2.5, 1, "unavailable", 503), (3.5, 1, "unavailable", 503)])
        (report,) = fault_report(failing, [EVENT])
        assert report["recovered_s"] is None
        assert report["recovery_s"] is None
        assert report["failures"] == 2
        assert list(outage_mask(failing, [report])) == [True, True]

    def test_a_fault_that_was_not_injected_has_no_figures(self):
        (report,) = fault_report(RUN, [FaultEvent("db-restart@9s", 9.0)])
        assert report["injected_s"] is None
        assert report["recovery_s"] is None

    def test_each_fault_ends_where_the_next_begins(self):
        second = FaultEvent("db-restart@4s", 4.0, injected_s=3.9, down_s=3.95, up_s=4.2)
        first, later = fault_report(RUN, [EVENT, second])
        assert first["recovered_s"] == pytest.approx(3.1)
        assert later["failures"] == 1
        assert later["recovered_s"] is None


class TestSummary:
    def test_reports_the_fault_and_warns_when_it_did_not_recover(self):
        (report,) = fault_report(RUN, [EVENT])
        unrecovered = {**report, "recovered_s": None, "recovery_s": None, "lag_s": None}
        for fault, expected in (
            (report, "recovered in 1.10 s (0.10 s after the database was up)"),
            (unrecovered, "NOT RECOVERED"),
        ):
            summary = summarize(
                RUN, target="http", strategy="pessimistic", model="closed", vus=2, rate=None, think_ms=0.0,
                duration_s=5.0, audit=None, lock_waiters_mean=None, client_cpu_percent=None, meta={"faults": [fault]},
            )  # fmt: skip
            text = render_text(summary)
            assert "fault db-stop@2s:0.9s" in text
            assert "4 failed (unavailable=3, http_500=1" in text
            assert expected in text
            assert bool(summary["meta"]["warnings"]) == (fault is unrecovered)

    def test_a_redis_fault_says_redis(self):
        redis = FaultEvent("redis-kill@2s:0.9s", 2.0, server="Redis", injected_s=2.0, down_s=2.1, up_s=3.0)
        (report,) = fault_report(RUN, [redis])
        summary = summarize(
            RUN, target="db", strategy="redis_gate", model="closed", vus=2, rate=None, think_ms=0.0,
            duration_s=5.0, audit=None, lock_waiters_mean=None, client_cpu_percent=None, meta={"faults": [report]},
        )  # fmt: skip
        text = render_text(summary)
        assert "fault redis-kill@2s:0.9s" in text
        assert "Redis down 0.90 s" in text
        assert "(0.10 s after Redis was up)" in text
