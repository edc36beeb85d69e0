"""Running a k6 script from `tests/k6/` against a service, for the tests that check the original's contract with
the original's tool (`flashsale.load.k6` runs it)."""

from __future__ import annotations

from pathlib import Path

from flashsale.load import k6
from flashsale.load.k6 import K6Run, k6_binary

SCRIPTS = Path(__file__).resolve().parents[1] / "k6"

__all__ = ["K6Run", "k6_binary", "run_k6"]


def run_k6(binary: str, script: str, tmp_path: Path, *, env: dict[str, str], options: list[str]) -> K6Run:
    """`k6 run` the script of `tests/k6/` with `-e NAME=VALUE` for each of `env`; its summary comes back parsed."""
    return k6.run_k6(SCRIPTS / script, env=env, options=options, binary=binary, workdir=tmp_path)
