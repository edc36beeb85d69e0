"""The load runner: closed (virtual users) and open (arrival rate) workloads against the order logic in-process
(`db`) or the HTTP service (`http`), exact latency summaries, lock contention sampling, the oversell audit after
every run, and the pgbench reference line.

    from flashsale.load import Closed, LoadConfig, run_load

    result = run_load(LoadConfig(target="db", shape=Closed(vus=32, think_ms=0), duration_s=10))
    result.summary          # the `flashsale load --json` document
    result.summary_frame()  # one row, for concatenating sweeps
    result.records          # one row a request: start_s, latency_ms, outcome, status, warmup, worker
    result.lock_timeline    # pg_stat_activity samples: t_s, tuple, transactionid, other_lock, active

The names below are imported on first use, so that the `flashsale` command (which registers `load` and `bench`)
does not pay for pandas and aiohttp on every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashsale.load.config import LoadConfig
    from flashsale.load.outcomes import Outcomes
    from flashsale.load.pgbench import PgbenchFailed, PgbenchResult, run_pgbench
    from flashsale.load.records import RecordBuffer
    from flashsale.load.runner import LoadResult, run_load, run_load_async
    from flashsale.load.shapes import Closed, Open, Ramping, Shape, Spike, schedule
    from flashsale.load.summary import latency_stats, render_text, summarize, summary_frame
    from flashsale.load.workloads import WorkloadStats, run_closed, run_open

_EXPORTS = {
    "Closed": "shapes",
    "LoadConfig": "config",
    "LoadResult": "runner",
    "Open": "shapes",
    "Outcomes": "outcomes",
    "PgbenchFailed": "pgbench",
    "PgbenchResult": "pgbench",
    "Ramping": "shapes",
    "RecordBuffer": "records",
    "Shape": "shapes",
    "Spike": "shapes",
    "WorkloadStats": "workloads",
    "latency_stats": "summary",
    "render_text": "summary",
    "run_closed": "workloads",
    "run_load": "runner",
    "run_load_async": "runner",
    "run_open": "workloads",
    "run_pgbench": "pgbench",
    "schedule": "shapes",
    "summarize": "summary",
    "summary_frame": "summary",
}

__all__ = [
    "Closed",
    "LoadConfig",
    "LoadResult",
    "Open",
    "Outcomes",
    "PgbenchFailed",
    "PgbenchResult",
    "Ramping",
    "RecordBuffer",
    "Shape",
    "Spike",
    "WorkloadStats",
    "latency_stats",
    "render_text",
    "run_closed",
    "run_load",
    "run_load_async",
    "run_open",
    "run_pgbench",
    "schedule",
    "summarize",
    "summary_frame",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
