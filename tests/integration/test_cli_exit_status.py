"""The exit statuses the README promises for bad input: 2, whichever layer finds the input bad."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["db", "reset", "--users", "0"],
        ["db", "reset", "--inventory", "-1"],
        ["db", "reset", "--per-user-limit", "0"],
        ["db", "reset", "--shards", "0"],
    ],
)
def test_bad_scenario_parameters_exit_2(args, database_url):
    proc = subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FLASHSALE_DATABASE_URL": database_url},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
