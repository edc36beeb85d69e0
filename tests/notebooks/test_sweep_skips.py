"""`flashsale sweep` with an option a notebook does not suit: that notebook is skipped with its reason, the others
are measured and rendered; only a sweep left with nothing to run is bad input."""

import json
import os
import subprocess
import sys

ODD = """
name: odd
notebooks:
  - notebook: 3.0-lock-contention
    parameters: {dataset: contention, strategies: [pessimistic], contention_vus: 2, duration_s: 0.5, warmup_s: 0.1}
  - notebook: 4.0-faults
    parameters: {dataset: faults, faults: [db-restart@30s], vus: 2, duration_s: 5.0}
"""


def sweep(tmp_path, text, *args):
    (tmp_path / "odd.yaml").write_text(text)
    env = {
        **os.environ,
        "FLASHSALE_DATA_DIR": str(tmp_path / "data"),
        "FLASHSALE_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", "sweep", "--config", str(tmp_path / "odd.yaml"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_a_notebook_the_options_do_not_suit_is_skipped_and_the_others_rendered(database_url, tmp_path):
    proc = sweep(tmp_path, ODD, "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "after the run's end" in out["skipped"]["4.0-faults"]
    assert sorted(os.path.basename(p) for p in out["reports"]) == ["index.html", "odd--3.0-lock-contention.html"]
    assert "4.0-faults: skipped" in proc.stderr


def test_a_sweep_with_nothing_left_to_run_is_bad_input(database_url, tmp_path):
    only_faults = "notebooks:\n  - notebook: 4.0-faults\n    parameters: {faults: [db-restart@30s], duration_s: 5.0}\n"
    proc = sweep(tmp_path, only_faults, "--quiet")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no notebook of the sweep can run" in proc.stderr
