"""The notebooks executed for real by papermill through `flashsale sweep`, with tiny parameters (runs of about a
second), then `flashsale report` re-rendering them from data alone."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flashsale.experiments import analysis
from flashsale.load.records import read_run
from flashsale.testing import TEST_REDIS_URL_ENV
from tests.notebooks.tiny import NOTEBOOKS, REDIS_FAULT


def flashsale(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def swept(tiny_sweep):
    """The tiny sweep, started in the background when the session began (`tests.notebooks.tiny`): its root, its
    environment and what it printed."""
    return tiny_sweep.result()


def html(root: Path, notebook: str) -> str:
    return (root / "reports" / f"tiny--{notebook}.html").read_text()


class TestSweep:
    def test_writes_a_report_per_notebook_and_the_index(self, swept):
        root, _, out = swept
        assert sorted(Path(p).name for p in out["reports"]) == sorted(
            [f"tiny--{n}.html" for n in NOTEBOOKS] + ["index.html"]
        )
        for notebook in NOTEBOOKS:
            assert (root / "reports" / "runs" / f"tiny--{notebook}.ipynb").exists()

    @pytest.mark.parametrize("notebook", NOTEBOOKS)
    def test_reports_have_figures_and_tables_and_no_code_or_noise(self, swept, notebook):
        page = html(swept[0], notebook)
        assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", page)) >= 1
        assert "<table" in page
        for noise in ("Traceback", "Warning", "from flashsale", "run_cells("):
            assert noise not in page, noise

    def test_sweep_marks_the_unsafe_strategy_and_has_every_cell(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "concurrency" / "cells.parquet")
        assert len(cells) == 2 * 2 * 2  # strategies x levels x repeats
        assert set(cells["repeat"]) == {0, 1}
        page = html(root, "2.0-concurrency")
        assert "unsafe (UNSAFE)" in page
        assert "orders/s range" in page

    def test_every_row_carries_its_context(self, swept):
        cells = pd.read_parquet(swept[0] / "data" / "concurrency" / "cells.parquet")
        for column in (
            "time",
            "git_commit",
            "pg_version",
            "pg_synchronous_commit",
            "pg_max_connections",
            "pg_shared_buffers",
            "cpu_count",
            "memory_gb",
            "param.duration_s",
            "param.vus",
        ):
            assert cells[column].notna().all(), column
        assert cells["pg_version"].str.startswith("18").all()

    def test_per_request_records_and_pgbench_are_tidy_files(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "concurrency" / "cells.parquet")
        one = pd.read_parquet(root / "data" / "concurrency" / "requests" / f"{cells['cell_id'].iloc[0]}.parquet")
        assert {"start_s", "latency_ms", "outcome"} <= set(one.columns)
        assert len(one) == cells["requests"].iloc[0] + int(one["warmup"].sum())
        pgbench = pd.read_parquet(root / "data" / "concurrency" / "pgbench.parquet")
        assert len(pgbench) == len(cells)
        assert (pgbench.loc[pgbench["strategy"] == "pessimistic", "tps"] > 0).all()

    def test_baseline_sets_the_published_figures_beside_its_own(self, swept):
        page = html(swept[0], "1.0-devlog-baseline")
        assert "13.36" in page  # the seed's p95
        assert "91.3" in page  # and its RPS
        assert "never sells out" in page
        assert re.search(r"\d\.\d\d \(\d+\.\d\d–\d+\.\d\d\)", page)  # a median with its range

    def test_baseline_pairs_each_repeat_with_k6_on_one_service(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "baseline" / "cells.parquet")
        assert sorted(cells["repeat"]) == [0, 0, 1, 1]  # two sales, two repeats
        k6 = pd.read_parquet(root / "data" / "baseline" / "k6.parquet")
        never = cells[cells["label"] == "never sells out"]
        assert sorted(k6["cell_id"]) == sorted(never["cell_id"])  # one k6 run beside each of the runner's
        assert (k6["requests"] > 0).all()
        assert (k6["placed_share"] == 1).all()  # the sale never sells out: every order of k6's placed
        assert (never["param.base_url"].isna()).all()  # the service's port is no parameter of the cell
        page = html(root, "1.0-devlog-baseline")
        for text in ("One service, two clients", "runner / k6", "agree within 10%"):
            assert text in page, text

    def test_index_lists_reports_with_parameters(self, swept):
        index = (swept[0] / "reports" / "index.html").read_text()
        for notebook in NOTEBOOKS:
            assert f"tiny--{notebook}.html" in index
        assert "contention_vus" in index

    def test_faults_show_the_outage_the_recovery_and_the_audit(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "faults" / "cells.parquet")
        assert len(cells) == 1
        cell = cells.iloc[0]
        fault = analysis.fault_of(cell)  # from the cell's tidy fault.* columns
        assert fault["fault"] == "db-restart@1s"
        assert fault["recovery_s"] is not None
        assert fault["failures"] > 0  # the clients saw the outage...
        assert cell["audit.ok"]  # ...and nothing was lost
        assert cell["audit.acknowledged_missing"] == cell["audit.key_violations"] == 0
        requests, _, summary = read_run(root / "data" / "faults" / "requests" / f"{cell['cell_id']}.parquet")
        assert summary["meta"]["faults"] == [fault]  # the tidy columns give back the report the runner wrote
        assert requests["in_outage"].sum() == fault["requests"]
        assert (requests.loc[requests["in_outage"], "status"] == 503).sum() == fault["failures"]
        page = html(root, "4.0-faults")
        assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", page)) == 2
        for text in ("Each fault, as the clients saw it", "db-restart@1s", "first success after", "key violations"):
            assert text in page, text


class TestReportFromDataAlone:
    def test_rerenders_without_new_load(self, swept):
        root, env, _ = swept
        cells = root / "data" / "concurrency" / "cells.parquet"
        before = cells.stat().st_mtime_ns, len(pd.read_parquet(cells))
        page = root / "reports" / "tiny--2.0-concurrency.html"
        page.unlink()
        other = root / "reports" / "tiny--3.0-lock-contention.html"
        untouched = other.stat().st_mtime_ns
        proc = flashsale("report", "--notebooks", "2.0-concurrency", env=env)
        assert proc.returncode == 0, proc.stderr
        assert page.exists()
        assert (cells.stat().st_mtime_ns, len(pd.read_parquet(cells))) == before
        assert other.stat().st_mtime_ns == untouched  # only the report asked for
        proc = flashsale("report", "--notebooks", "9.9-nothing", env=env)
        assert proc.returncode == 2
        assert "no executed notebook named 9.9-nothing" in proc.stderr

    def test_without_data_it_says_what_to_run(self, swept, tmp_path):
        root, env, _ = swept
        (tmp_path / "runs").mkdir()
        executed = root / "reports" / "runs" / "tiny--2.0-concurrency.ipynb"
        (tmp_path / "runs" / executed.name).write_bytes(executed.read_bytes())
        env = {**env, "FLASHSALE_DATA_DIR": str(tmp_path / "empty"), "FLASHSALE_REPORTS_DIR": str(tmp_path)}
        proc = flashsale("report", env=env)
        assert proc.returncode == 1
        assert "never measured" in proc.stderr
        assert "tiny--2.0-concurrency.ipynb" in proc.stderr  # the notebook to open


class TestFlashDealPhases:
    def test_admission_control_turns_orders_away_and_samples_the_queue(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "admission" / "cells.parquet").set_index("label")
        outcomes = cells.filter(like="outcome.").fillna(0)
        assert outcomes.loc["no admission control"].get("outcome.queue_full", 0) == 0  # nothing to be full
        queued = cells.loc["queue of 4, 1 worker"]
        assert queued["outcome.queue_full"] > 0  # 24 VUs without pause against a queue of 4
        assert cells.loc["queue + 2 orders/s per user", "outcome.rate_limited"] > 0
        assert cells["audit.ok"].all()
        # the service's queue was sampled beside the locks: it held orders, never more than its capacity
        locks = pd.read_parquet(root / "data" / "admission" / "requests" / f"{queued['cell_id']}.locks.parquet")
        assert 0 < locks["queue_depth"].max() <= 4
        page = html(root, "5.0-admission-control")
        assert "FlashDeal phase 3" in page
        assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", page)) == 2  # answers, queue depth

    def test_async_orders_are_all_settled_and_compared_with_flashdeal(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "async" / "cells.parquet").set_index("label")
        accepted = cells.loc["async: 202, then polled"]
        assert accepted["outcome.accepted"] > 0
        settled = [c for c in cells if c.startswith("meta.async.settled.")]
        assert accepted[settled].fillna(0).sum() == accepted["outcome.accepted"]
        assert accepted["audit.accepted_unsettled"] == 0
        assert (cells["audit.pending"].fillna(0) == 0).all()
        assert cells["audit.ok"].all()
        assert cells.loc["spike, sync", "requests"] == 100  # one order a buyer
        page = html(root, "6.0-async-orders")
        assert "FlashDeal phase 5" in page

    def test_redis_front_shares_the_limit_spares_the_database_and_survives_redis_killed(self, swept):
        root = swept[0]
        cells = pd.read_parquet(root / "data" / "redis-front" / "cells.parquet")
        parts = analysis.redis_front_parts(cells)
        assert list(parts.admission["param.admission"]) == ["local", "redis"]
        assert (parts.admission["outcome.rate_limited"] > 0).all()  # two users without pause: both over the limit
        # The shared limit bounds what every process together admitted, whatever the machine's speed: the burst,
        # then the rate over the measured window and the slowest answer (an order sent in the window reaches Redis
        # within it).
        shared = parts.admission.iloc[1]
        window_s = shared["duration_s"] + shared["latency_ms.max"] / 1000
        admitted = analysis.admitted_per_user(parts.admission)["admitted"].iloc[1]
        assert admitted <= shared["param.user_rate"] * (1 + window_s) / shared["duration_s"]
        cost = parts.gate.set_index("label")["meta.pg_transactions.per_request"]
        assert cost["redis_gate, sale of 5"] < 1  # the gate's refusals never reach PostgreSQL
        assert cost["pessimistic, sale of 5"] >= 1  # each of the naive flow's requests is a transaction at least
        assert (parts.gate["audit.gate_disagreements"].fillna(0) == 0).all()
        assert cells["audit.ok"].all()
        page = html(root, "7.0-redis-front")
        for text in ("FlashDeal phase 7", "admitted / limit", "PG transactions / request", "gate disagreements"):
            assert text in page, text
        if os.environ.get(TEST_REDIS_URL_ENV):
            assert parts.faulted.empty
            return
        (fault,) = [analysis.fault_of(row) for _, row in parts.faulted.iterrows()]
        assert (fault["fault"], fault["server"], fault["error"]) == (REDIS_FAULT, "Redis", None)
        assert fault["failures"] > 0  # the clients saw Redis go...
        assert parts.faulted["audit.ok"].all()  # ...and nothing was oversold or lost, the gate rebuilt to agree
        assert REDIS_FAULT in page
        assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", page)) == 3  # admitted, the gate, the kill
