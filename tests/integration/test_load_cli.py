"""`flashsale load` and `flashsale bench pgbench` run as a user runs them: real processes on the test database."""

import json

import pandas as pd
import pytest

from flashsale.load.summary import AUDIT_KEYS, LATENCY_KEYS, OUTCOME_KEYS, SUMMARY_KEYS
from tests.integration.test_cli import flashsale

SHORT = ["--duration", "1s", "--quiet"]


class TestLoadCommand:
    def test_json_has_the_documented_keys(self, database_url):
        proc = flashsale("load", "--vus", "2", "--think-ms", "10", *SHORT, "--json")
        summary = json.loads(proc.stdout)
        assert tuple(summary) == SUMMARY_KEYS
        assert tuple(summary["latency_ms"]) == LATENCY_KEYS
        assert tuple(summary["audit"]) == AUDIT_KEYS
        for stats in summary["by_outcome"].values():
            assert tuple(stats) == OUTCOME_KEYS
        assert (summary["target"], summary["strategy"], summary["model"]) == ("db", "pessimistic", "closed")
        assert (summary["vus"], summary["think_ms"], summary["rate"]) == (2, 10.0, None)
        assert summary["audit"]["ok"] is True
        assert summary["requests"] == sum(summary["outcomes"].values())
        assert proc.stderr == ""

    def test_text_summary_and_parquet_records(self, database_url, tmp_path):
        out = tmp_path / "runs" / "load.parquet"
        proc = flashsale("load", "--rate", "20", "--warmup", "0.2s", *SHORT, "--out", str(out))
        assert "open model: 20 orders/s" in proc.stdout
        assert "p(95)=" in proc.stdout
        assert "audit" in proc.stdout
        records = pd.read_parquet(out)
        assert list(records.columns) == [
            "start_s",
            "latency_ms",
            "send_lag_ms",
            "outcome",
            "status",
            "warmup",
            "worker",
        ]
        assert set(records["worker"]) == {0}  # one load process on this machine by default
        assert len(records) == 24  # 20/s for 1.2 s
        assert records["warmup"].sum() == 4
        assert (tmp_path / "runs" / "load.locks.parquet").exists()

    def test_a_failed_audit_exits_non_zero(self, database_url):
        import psycopg

        flashsale("db", "reset", "--users", "1", "--inventory", "1")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO orders (user_id, flash_sale_id, quantity, status)"
                " SELECT u.id, s.id, 2, 'CONFIRMED' FROM users u, flash_sales s"
            )
        proc = flashsale("load", "--no-reset", "--vus", "1", "--think-ms", "50", *SHORT, "--json", check=False)
        assert proc.returncode == 1
        summary = json.loads(proc.stdout)
        assert summary["audit"]["ok"] is False
        assert summary["audit"]["oversold"] == 1
        assert "audit failed" in proc.stderr
        assert "Traceback" not in proc.stderr

    @pytest.mark.parametrize(
        "args",
        [
            ["--vus", "0"],
            ["--target", "ftp"],
            ["--base-url", "http://127.0.0.1:1"],  # only for the http target
            ["--strategy", "nope"],
            ["--duration", "soon"],
            ["--rate", "0"],
            ["--rate", "10", "--spike", "5:1s"],  # two shapes
            ["--stages", "0s:0,1s:10", "--think-jitter", "0.5"],  # a closed model's option with an open shape
            ["--honour-retry-after"],  # an HTTP header: for the http target only
            ["--target", "http", "--honour-retry-after", "--rate", "10"],  # arrivals on a schedule wait for nothing
            ["--target", "http", "--retry-after-max", "5s"],  # a cap of nothing
            ["--target", "http", "--honour-retry-after", "--retry-after-max", "0s"],
        ],
    )
    def test_bad_input_is_one_line(self, args, database_url):
        proc = flashsale("load", *args, "--quiet", check=False)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1

    def test_help(self):
        for args in (["load", "--help"], ["bench", "--help"], ["bench", "pgbench", "--help"]):
            assert "usage:" in flashsale(*args).stdout


class TestBenchPgbench:
    def test_pessimistic_script_reports_tps(self, database_url):
        proc = flashsale(
            "bench",
            "pgbench",
            "--strategy",
            "pessimistic",
            "--vus",
            "2",
            "--duration",
            "1s",
            "--json",
            "--inventory",
            "1000",
            "--per-user-limit",
            "100",
        )
        result = json.loads(proc.stdout)
        assert {"tps", "latency_avg_ms", "clients"} <= set(result)
        assert result["tps"] > 0
        assert result["latency_avg_ms"] > 0
        # Each order sold came from one pgbench transaction (a refused one sells nothing).
        assert 0 < result["audit"]["orders"] <= result["transactions"]
        assert result["clients"] == 2
        assert result["failed"] == 0
        # pgbench ran the strategy's SQL: what it sold passes the same audit.
        assert result["audit"]["ok"] is True
        assert result["audit"]["orders"] > 0
        # By default the script closest to the driver, which for pessimistic cannot be exact.
        assert (result["variant"], result["matched"]) == ("driver", False)
        assert "BEGIN" in result["note"]

    def test_text_output(self, database_url):
        proc = flashsale("bench", "pgbench", "--vus", "1", "--duration", "1s")
        assert "pgbench pessimistic: 1 clients" in proc.stdout
        assert "tps" in proc.stdout
        assert "script .........: driver (differs from the driver: " in proc.stdout

    def test_the_variant_is_chosen_and_reported(self, database_url):
        common = ("bench", "pgbench", "--strategy", "atomic", "--vus", "1", "--duration", "1s")
        lookup = json.loads(flashsale(*common, "--variant", "lookup", "--json").stdout)
        assert (lookup["variant"], lookup["matched"]) == ("lookup", False)
        assert lookup["audit"]["ok"] is True
        assert "script .........: driver (matches the driver's round trips; " in flashsale(*common).stdout
        assert flashsale(*common, "--variant", "fast", check=False).returncode == 2
