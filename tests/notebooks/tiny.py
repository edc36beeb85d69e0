"""The tiny sweep the notebook tests look at: every notebook executed for real by papermill through `flashsale
sweep`, with tiny parameters (runs of about a second).

It takes about two minutes, most of it waiting (kernels starting, services starting, runs of a second), so it is
started in the background as soon as a session that will look at it begins (`tiny_sweep`, a fixture of
tests/conftest.py), and the other tests run beside it; the notebook tests wait for it. It runs on a database and a
Valkey of its own (notebook 4.0 restarts its database, 7.0 kills its Redis; on a Redis given by URL, which cannot be
faulted, 7.0 runs without the fault), so nothing it does reaches the other tests. Its runs assert no timing, so the
load beside it changes nothing but their figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flashsale.testing import TEST_REDIS_URL_ENV, ScratchServer, TestRedis
from tests.waiting import HANG_S

SWEEP_TIMEOUT_S = 900  # the sweep's own limit (a busy machine takes longer)
TINY = """
name: tiny
parameters: {placement: free}  # the suite may run beside other work: no part on one core of its own
notebooks:
  - notebook: 1.0-devlog-baseline
    parameters: {dataset: baseline, duration_s: 1.5, repeats: 2}
  - notebook: 2.0-concurrency
    parameters: {dataset: concurrency, strategies: [pessimistic, unsafe], vus: [1, 4], duration_s: 1.0, warmup_s: 0.2,
                 repeats: 2, users: 50}
  - notebook: 3.0-lock-contention
    parameters: {dataset: contention, strategies: [pessimistic], contention_vus: 4, duration_s: 1.0, warmup_s: 0.2}
  - notebook: 4.0-faults
    # 5 s after the restart to recover: a restart and the first success after it took more than 1.5 s with both
    # cores busy (two busy loops beside the suite)
    parameters: {dataset: faults, faults: [db-restart@1s], vus: 4, duration_s: 6.0, users: 50}
  - notebook: 5.0-admission-control
    parameters: {dataset: admission, vus: 24, duration_s: 1.5, users: 200, inventory: 20, pool_size: 4,
                 queue_size: 4, user_rate: 2.0, repeats: 1}
  - notebook: 6.0-async-orders
    parameters: {dataset: async, vus: 8, duration_s: 1.5, users: 100, inventory: 20, pool_size: 4, queue_size: 20,
                 poll_interval_s: 0.1, spike_buyers: 100, spike_window_s: 1.0, sale_opens_s: 0.3, repeats: 1}
  - notebook: 7.0-redis-front
    # no reference lines: redis-benchmark's 100,000 calls would take longer than every run of it together
    parameters: {dataset: redis-front, vus: 8, duration_s: 1.5, warmup_s: 0.3, users: 50, front_users: 2,
                 inventory: 5, pool_size: 4, queue_size: 20, user_rate: 5.0, compared: [pessimistic],
                 gate_duration_s: 0.5, reference: false, faults: FAULTS, repeats: 1}
"""
REDIS_FAULT = "redis-kill@0.5s:0.3s"
NOTEBOOKS = (
    "1.0-devlog-baseline",
    "2.0-concurrency",
    "3.0-lock-contention",
    "4.0-faults",
    "5.0-admission-control",
    "6.0-async-orders",
    "7.0-redis-front",
)


class TinySweep:
    """`flashsale sweep` of `TINY` in a child process, started on entry; `result()` waits for it. On exit, a sweep
    still running is killed by its pid, and its servers are stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self._stack = contextlib.ExitStack()
        self._out: dict[str, Any] | None = None

    def __enter__(self) -> TinySweep:
        try:
            scratch = self._stack.enter_context(ScratchServer())
            redis_url = self._stack.enter_context(TestRedis(export_url=False))
            external = bool(os.environ.get(TEST_REDIS_URL_ENV))
            (self.root / "tiny.yaml").write_text(TINY.replace("FAULTS", "[]" if external else f"['{REDIS_FAULT}']"))
            self.env = {
                **os.environ,
                "FLASHSALE_DATABASE_URL": str(scratch.url),
                "FLASHSALE_REDIS_URL": redis_url,
                "FLASHSALE_DATA_DIR": str(self.root / "data"),
                "FLASHSALE_REPORTS_DIR": str(self.root / "reports"),
            }
            command = [sys.executable, "-m", "flashsale.cli.main", "sweep", "--config", str(self.root / "tiny.yaml")]
            with (self.root / "sweep.out").open("w") as out, (self.root / "sweep.err").open("w") as err:
                self.process = subprocess.Popen([*command, "--quiet", "--json"], env=self.env, stdout=out, stderr=err)
        except BaseException:
            self._stack.close()
            raise
        return self

    def result(self) -> tuple[Path, dict[str, str], dict[str, Any]]:
        """(root, environment, the sweep's JSON) once it has ended well; AssertionError with its stderr if not."""
        if self._out is None:
            assert self.process is not None
            try:
                code = self.process.wait(timeout=SWEEP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the tiny sweep ran longer than {SWEEP_TIMEOUT_S} s") from None
            assert code == 0, (self.root / "sweep.err").read_text()
            self._out = json.loads((self.root / "sweep.out").read_text())
        return self.root, self.env, self._out

    def __exit__(self, *exc: object) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=HANG_S)
        finally:
            self._stack.close()
