"""`flashsale serve` refuses bad options before it binds anything."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["--pool-size", "0"],
        ["--pool-timeout", "0"],
        ["--pool-timeout", "soon"],
        ["--port", "70000"],
        ["--port", "http"],
        ["--strategy", "nope"],
        ["--workers", "0"],
        ["--workers", "two"],
        ["--queue-size", "-1"],
        ["--user-rate", "nan"],
        ["--drain-timeout", "-1s"],
        ["--stop-margin", "soon"],
        ["--open-timeout", "-2s"],
        ["--accept", "async"],
        ["--accept", "async", "--queue-size", "5", "--pool-size", "1"],
    ],
)
def test_bad_options_are_one_line_and_exit_2(args, database_url):
    proc = subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", "serve", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", "serve", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for option in ("--host", "--port", "--strategy", "--pool-size", "--pool-timeout", "--workers", "--no-access-log"):
        assert option in out
    for option in ("--drain-timeout", "--stop-margin", "--open-timeout"):
        assert option in out
    statuses = {int(m) for m in re.findall(r"^  (\d+) ", out[out.index("exit status:") :], re.MULTILINE)}
    assert statuses == {0, 2, 3, 4, 5, 130}  # "workers lost" and "unclean stop" apart from each other and from 1
