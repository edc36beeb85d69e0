"""What the reports compute from the tidy tables, beyond plotting: the bounds the measurements are checked against
(the think time, the seed's rule of thumb), the fault timings, the driver against pgbench, the audit; and, through
`flashsale.db.engine()`, what only the database holds (orders over time, the audit, lock waits).

Every function takes the tables `run_cells` returns (one row per cell and repeat, tidy columns) and returns a
number, a small frame or a sentence, so that the notebooks keep only calls and prose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np
import pandas as pd

from flashsale import config, strategies

# The measured throughput is "at" a bound when it is within this share of it.
BOUND_TOLERANCE = 0.03


def strategy_label(name: str) -> str:
    """The strategy's name, marked UNSAFE for the counter-examples."""
    cls = strategies.STRATEGIES.get(name)
    return f"{name} (UNSAFE)" if cls is not None and not cls.safe else name


# --- the think-time bound (closed model) ---------------------------------------------------------------------------


def think_time_bound(vus: int, think_ms: float, latency_avg_ms: float) -> float:
    """The most requests per second `vus` closed-model users can send when each one waits `think_ms` after every
    answer: vus / (think time + mean latency)."""
    return vus / ((think_ms + latency_avg_ms) / 1000)


@dataclass(frozen=True)
class BoundCheck:
    """A measured throughput set against a bound: `share` is measured / bound."""

    bound: float
    measured: float

    @property
    def share(self) -> float:
        return self.measured / self.bound if self.bound else float("nan")

    @property
    def at_bound(self) -> bool:
        return abs(self.share - 1) <= BOUND_TOLERANCE


def think_time_check(run: pd.Series, *, vus: int, think_ms: float) -> BoundCheck:
    """A run's requests per second against the think-time bound computed from its own mean latency."""
    return BoundCheck(think_time_bound(vus, think_ms, run["latency_ms.avg"]), run["rps"])


def think_time_verdict(check: BoundCheck) -> str:
    if check.at_bound:
        return f"it is within {BOUND_TOLERANCE:.0%} of the bound"
    return (
        f"it is more than {BOUND_TOLERANCE:.0%} away from the bound, a sign that something else (the client, the "
        "machine) got in the way"
    )


# --- the seed's published figures -----------------------------------------------------------------------------------

BASELINE_METRICS = ["RPS", "requests", "avg", "p50", "p90", "p95", "max", "orders created", "created-only p95"]


def published_baselines() -> dict[str, Any]:
    """The seed's published load-test figures (`data/reference/seed-baselines.json`)."""
    return json.loads((config.REFERENCE_DIR / "seed-baselines.json").read_text())


def baseline_side_by_side(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """The seed's figures, the later FlashDeal devlog's run of the same scenario and each of these runs, one column
    each, one row per metric (latencies in ms)."""
    published = published or published_baselines()
    seed = published["devlog-02-naive-concurrency"]["results"]
    later = published["flashdeal-devlog-02-observability-first"]["results"]

    def measured(row: pd.Series) -> dict[str, Any]:
        latency = {k: row[f"latency_ms.{k}"] for k in ("avg", "p50", "p90", "p95", "max")}
        return {"RPS": row["rps"], "requests": row["requests"], **latency, "orders created": row["orders"],
                "created-only p95": row["created_p95_ms"]}  # fmt: skip

    columns = {
        "seed devlog 02": {"RPS": seed["rps"], **seed["latency_ms"]},
        "FlashDeal devlog 02 (30 s)": {
            "RPS": later["rps"],
            "requests": later["requests"],
            **later["latency_ms"],
            "created-only p95": later["created_only_latency_ms"]["p95"],
        },
        **{f"this project: {row['label']}": measured(row) for _, row in cells.iterrows()},
    }
    side = pd.DataFrame(columns).reindex(BASELINE_METRICS)
    side.index.name = "metric"
    return side.reset_index()


# --- the seed's rule of thumb: throughput <= 1 / lock hold time -----------------------------------------------------


def lock_hold_ceiling(hold_ms: float) -> float:
    """Orders per second one row can pass when each order holds its lock `hold_ms`: 1 / hold time."""
    return 1000 / hold_ms


@dataclass(frozen=True)
class RuleOfThumb:
    """The rule checked on `pessimistic`: its p50 latency alone (1 VU, no queue) as the hold time, the ceiling it
    predicts, and the throughput measured alone and at `vus` virtual users (None when that cell is missing)."""

    hold_ms: float
    measured_alone: float
    vus: int
    measured: float | None

    @property
    def predicted(self) -> float:
        return lock_hold_ceiling(self.hold_ms)

    @property
    def ratio(self) -> float | None:
        return None if self.measured is None else self.measured / self.predicted

    @property
    def holds(self) -> bool | None:
        """Measured at most 10 % above the ceiling (the measurement's own noise)."""
        return None if self.ratio is None else self.ratio <= 1.1

    def table(self) -> pd.DataFrame:
        rows = [
            ("lock hold time (p50 latency at 1 VU)", f"{self.hold_ms:.2f} ms"),
            ("predicted ceiling, 1 / hold time", f"{self.predicted:,.0f} orders/s"),
            ("measured at 1 VU", f"{self.measured_alone:,.0f} orders/s"),
        ]
        if self.measured is not None:
            rows.append(
                (
                    f"measured at {self.vus} VUs",
                    f"{self.measured:,.0f} orders/s ({self.ratio:.2f}x the prediction)",
                )
            )
        return pd.DataFrame(rows, columns=["quantity", "value"])

    def verdict(self) -> str:
        if self.ratio is None:
            return f"The cell of `pessimistic` at {self.vus} VUs was not measured: nothing to check the rule against."
        if self.holds:
            why = "holds: no concurrency gets past the ceiling that one lock holder at a time allows"
        else:
            why = (
                "overestimates the hold time here: the single-user latency also counts work done outside the lock "
                "(the client's, the commit's flush), which overlaps once several users queue"
            )
        return (
            f"At {self.vus} VUs the naive flow reaches {self.ratio:.2f}x the predicted ceiling: "
            f"the rule of thumb {why}."
        )


def rule_of_thumb(cells: pd.DataFrame, *, vus: int) -> RuleOfThumb:
    """The rule of thumb from the contention cells: `pessimistic` at 1 VU and at `vus`."""
    pessimistic = cells[cells["strategy"] == "pessimistic"]
    alone = pessimistic[pessimistic["vus"] == 1].iloc[0]
    busy = pessimistic[pessimistic["vus"] == vus]
    return RuleOfThumb(
        hold_ms=float(alone["latency_ms.p50"]),
        measured_alone=float(alone["orders_per_s"]),
        vus=vus,
        measured=float(busy["orders_per_s"].iloc[0]) if len(busy) and vus != 1 else None,
    )


def lock_hold_ceilings(cells: pd.DataFrame) -> pd.DataFrame:
    """For the single-row designs that time their lock from the client (`meta.lock_hold_ms`: pessimistic and
    pessimistic_nowait), the ceiling 1 / hold time at each level: strategy, vus, hold_ms, ceiling (orders/s)."""
    if "meta.lock_hold_ms" not in cells:
        return pd.DataFrame(columns=["strategy", "vus", "hold_ms", "ceiling"])
    held = cells.dropna(subset=["meta.lock_hold_ms"])
    held = held[held["meta.lock_hold_ms"] > 0]
    out = held.groupby(["strategy", "vus"], sort=False)["meta.lock_hold_ms"].mean().rename("hold_ms").reset_index()
    out["ceiling"] = out["hold_ms"].map(lock_hold_ceiling)
    return out


# --- sweeps --------------------------------------------------------------------------------------------------------


def sweep_summary(cells: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per strategy and level, the mean of its repeats: throughput, goodput, with `reference` pgbench's
    orders/s at that level and the driver's share of it (`driver_vs_pgbench`), latency percentiles, row-lock
    waiters, the client's CPU, the audit (ok or OVERSOLD) and the number of runs."""
    summary = (
        cells.groupby(["strategy", "vus"], sort=False)
        .agg(
            rps=("rps", "mean"),
            orders_per_s=("orders_per_s", "mean"),
            p50=("latency_ms.p50", "mean"),
            p95=("latency_ms.p95", "mean"),
            p99=("latency_ms.p99", "mean"),
            lock_waiters=("lock_waiters_mean", "mean"),
            client_cpu=("client_cpu_percent", "mean"),
            audit_ok=("audit.ok", "all"),
            runs=("rps", "size"),
        )
        .reset_index()
    )
    ratio = driver_vs_pgbench(cells, reference) if reference is not None else pd.DataFrame()
    if not ratio.empty:
        pgbench = ratio[["strategy", "vus", "pgbench orders/s", "driver / pgbench"]]
        summary = summary.merge(pgbench, on=["strategy", "vus"], how="left")
        after = summary.columns.get_loc("orders_per_s") + 1
        moved = ["pgbench orders/s", "driver / pgbench"]
        rest = [c for c in summary.columns if c not in moved]
        summary = summary[[*rest[:after], *moved, *rest[after:]]]
    summary["audit"] = summary.pop("audit_ok").map({True: "ok", False: "OVERSOLD"})
    summary["strategy"] = summary["strategy"].map(strategy_label)
    return summary.rename(columns=SUMMARY_NAMES)


# The summary's columns as a reader sees them.
SUMMARY_NAMES = {
    "vus": "VUs",
    "rps": "requests/s",
    "orders_per_s": "orders/s",
    "lock_waiters": "row-lock waiters",
    "client_cpu": "client CPU",
}


def sweep_reading(cells: pd.DataFrame) -> str:
    """The best safe strategy against `pessimistic` (peak orders/s), and whether every run passed its audit."""
    lines = []
    safe = cells[cells["safe"].astype(bool)]
    peak = safe.groupby("strategy")["orders_per_s"].max().sort_values(ascending=False)
    others = [name for name in peak.index if name != "pessimistic"]
    if "pessimistic" in peak and others:
        top = others[0]
        lines.append(
            f"The best safe strategy, **{top}**, peaks at {peak[top]:,.0f} orders/s: "
            f"**{peak[top] / peak['pessimistic']:.1f}x** the naive `pessimistic` flow "
            f"({peak['pessimistic']:,.0f} orders/s)."
        )
    bad = cells[~cells["audit.ok"].astype(bool)]
    if len(bad):
        lines.append(f"**{len(bad)} run(s) failed the audit** ({', '.join(sorted(set(bad['strategy'])))}).")
    else:
        lines.append("Every run passed the audit: nothing oversold, no user above the limit.")
    return " ".join(lines)


def driver_vs_pgbench(cells: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Orders/s of the in-process driver against pgbench replaying the same SQL at the same concurrency (1.0: no
    client overhead), per strategy and level where both were measured."""
    columns = ["strategy", "vus", "driver orders/s", "pgbench orders/s", "driver / pgbench"]
    if reference.empty or "orders_per_s" not in reference:
        return pd.DataFrame(columns=columns)
    driver = cells.groupby(["strategy", "vus"], sort=False)["orders_per_s"].mean()
    pgbench = reference.groupby(["strategy", "clients"])["orders_per_s"].mean().rename_axis(["strategy", "vus"])
    both = pd.concat([driver.rename(columns[2]), pgbench.rename(columns[3])], axis=1, join="inner").dropna()
    both[columns[4]] = both[columns[2]] / both[columns[3]]
    return both.reset_index()[columns]


# --- outcomes and audits -------------------------------------------------------------------------------------------


def outcome_latency(cells: pd.DataFrame, *, label: str = "label") -> pd.DataFrame:
    """One row per run and outcome: the count and latency statistics (ms) of the requests that ended so."""
    rows = []
    for _, cell in cells.iterrows():
        stats: dict[str, dict[str, Any]] = {}
        for column, value in cell.items():
            if isinstance(column, str) and column.startswith("by_outcome.") and pd.notna(value):
                outcome, stat = column.removeprefix("by_outcome.").rsplit(".", 1)
                stats.setdefault(outcome, {})[stat] = value
        rows += [{"run": cell[label], "outcome": outcome, **values} for outcome, values in stats.items()]
    frame = pd.DataFrame(rows)
    if "count" in frame:
        frame["count"] = frame["count"].astype(int)
    return frame


AUDIT_COLUMNS = ("ok", "total", "remaining", "orders", "oversold", "limit_violations")


def audit_table(cells: pd.DataFrame, columns: tuple[str, ...] = AUDIT_COLUMNS, *, label: str = "label") -> pd.DataFrame:
    """The audit after each run, as read from the database: `ok` shown as ok or FAILED; column names without
    their `audit.` prefix and with spaces."""
    present = [c for c in columns if f"audit.{c}" in cells]
    table = cells[[label, *(f"audit.{c}" for c in present)]].copy()
    table.columns = [label, *(c.replace("_", " ") for c in present)]
    if "ok" in table:
        table["ok"] = table["ok"].map(lambda ok: "ok" if bool(ok) else "FAILED")
    return table.reset_index(drop=True)


# --- faults --------------------------------------------------------------------------------------------------------


def fault_of(cell: pd.Series, prefix: str = "fault") -> dict[str, Any]:
    """The run's fault report as the load runner wrote it (a dict, nested where it was), from its tidy columns."""
    report: dict[str, Any] = {}
    for column, value in cell.items():
        if not (isinstance(column, str) and column.startswith(f"{prefix}.")):
            continue
        *parents, leaf = column.removeprefix(f"{prefix}.").split(".")
        into = report
        for parent in parents:
            into = into.setdefault(parent, {})
        if parents and (value is None or pd.isna(value)):  # a kind of failure this run did not see
            continue
        into[leaf] = None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
    return report


def fault_timings(cells: pd.DataFrame, *, label: str = "label") -> pd.DataFrame:
    """Each fault as the clients saw it: when it was injected, how long the database was down, the first and last
    failures, the first success after it, recovery (from the fault) and lag (from the database being up), in
    seconds; the failures by kind and how fast they came (ms)."""
    rows = []
    for _, cell in cells.iterrows():
        r = fault_of(cell)
        latency = r.get("failure_latency_ms") or {}
        errors = {k: int(v) for k, v in (r.get("errors") or {}).items() if v}
        rows.append(
            {
                "run": cell[label],
                "injected": r.get("injected_s"),
                "database down for": r.get("unavailable_s"),
                "first failure": r.get("first_failure_s"),
                "last failure": r.get("last_failure_s"),
                "first success after": r.get("recovered_s"),
                "recovery": r.get("recovery_s"),
                "lag": r.get("lag_s"),
                "failures": int(r.get("failures") or 0),
                "failures by kind": ", ".join(f"{k}: {v:,}" for k, v in errors.items()) or "none",
                "failure p50 (ms)": latency.get("p50"),
                "failure p99 (ms)": latency.get("p99"),
                "failure max (ms)": latency.get("max"),
            }
        )
    return pd.DataFrame(rows)


def fault_reading(cells: pd.DataFrame, *, label: str = "label") -> str:
    """One sentence per fault run: the outage, the failures and how fast they came, the recovery."""
    lines = []
    for _, cell in cells.iterrows():
        r = fault_of(cell)
        if r.get("recovery_s") is None:
            lines.append(f"- **{cell[label]}**: no request succeeded after the fault before the run ended.")
            continue
        latency = r.get("failure_latency_ms") or {}
        failures = int(r.get("failures") or 0)
        failed = (
            f"{failures:,} requests failed, half of them answered within {latency['p50']:.1f} ms "
            f"(p99 {latency['p99']:.1f} ms)"
            if failures
            else "no request failed"
        )
        lines.append(
            f"- **{cell[label]}**: the database was down {r['unavailable_s']:.2f} s; {failed}; the first order "
            f"after it succeeded {r['recovery_s']:.2f} s after the fault, {r['lag_s']:.2f} s after the database "
            "was up, with no restart of the service."
        )
    return "\n".join(lines)


# --- straight from the database (flashsale.db.engine()) ------------------------------------------------------------


def orders_over_time(engine: Any, flash_sale_id: UUID | str, *, bucket_s: float = 1.0) -> pd.DataFrame:
    """Confirmed orders of a sale per `bucket_s`, from their `created_at` (the database's clock, commit order):
    second (since the first order) and orders."""
    sql = (
        "SELECT floor(extract(epoch FROM created_at - min(created_at) OVER ()) / %(bucket)s) * %(bucket)s AS second"
        " FROM orders WHERE flash_sale_id = %(sale)s AND status = 'CONFIRMED'"
    )
    frame = pd.read_sql(sql, engine, params={"sale": str(flash_sale_id), "bucket": bucket_s})
    return frame.groupby("second").size().rename("orders").reset_index()


def database_audit(engine: Any) -> pd.DataFrame:
    """Every sale as the database holds it: its inventory, the units left in its row and its shards, the units
    sold in confirmed orders, oversold units (sold beyond the inventory) and users above the limit."""
    sql = """
        SELECT s.id AS flash_sale_id, s.total_inventory AS inventory,
               s.remaining_inventory + coalesce(sh.units, 0) AS remaining,
               coalesce(o.units, 0) AS sold, coalesce(o.orders, 0) AS orders,
               greatest(coalesce(o.units, 0) - s.total_inventory, 0) AS oversold,
               (SELECT count(*) FROM (SELECT 1 FROM orders u WHERE u.flash_sale_id = s.id AND u.status = 'CONFIRMED'
                 GROUP BY u.user_id HAVING sum(u.quantity) > s.per_user_limit) AS x) AS limit_violations
          FROM flash_sales s
          LEFT JOIN (SELECT flash_sale_id, sum(quantity) AS units, count(*) AS orders FROM orders
                      WHERE status = 'CONFIRMED' GROUP BY flash_sale_id) o ON o.flash_sale_id = s.id
          LEFT JOIN (SELECT flash_sale_id, sum(remaining) AS units FROM flash_sale_shards GROUP BY flash_sale_id) sh
                 ON sh.flash_sale_id = s.id
         ORDER BY s.starts_at
    """
    return pd.read_sql(sql, engine)


def lock_waits(engine: Any) -> pd.DataFrame:
    """The sessions waiting on a lock now (pg_stat_activity), by wait event (`tuple`, `transactionid`, ...)."""
    sql = (
        "SELECT wait_event, count(*) AS sessions FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database() GROUP BY wait_event ORDER BY wait_event"
    )
    return pd.read_sql(sql, engine)


# --- FlashDeal's later phases: admission control (3), asynchronous orders (4) and retries (5) ------------------------


def _value(row: pd.Series, column: str, default: Any = None) -> Any:
    value = row.get(column, default)
    return default if value is None or (isinstance(value, float) and np.isnan(value)) else value


def flashdeal_admission(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """FlashDeal phase 3's figures beside each run's (one column each; latencies in ms)."""
    published = published or published_baselines()
    phase = published["flashdeal-devlog-03-admission-control"]["results"]
    metrics = ["requests", "req/s", "avg", "p50", "p95", "max", "created", "sold out", "rate limited", "queue full"]

    def measured(row: pd.Series) -> list[Any]:
        return [
            row["requests"], row["rps"], *(row[f"latency_ms.{k}"] for k in ("avg", "p50", "p95", "max")),
            *(_value(row, f"outcome.{name}", 0) for name in ("created", "sold_out", "rate_limited", "queue_full")),
        ]  # fmt: skip

    columns = {
        "FlashDeal phase 3 (30 s)": [
            phase["requests"], phase["rps"], *(phase["latency_ms"][k] for k in ("avg", "p50", "p95", "max")),
            *(phase["outcomes"][k] for k in ("created", "sold_out", "rate_limited", "queue_overflow")),
        ],
        **{f"this project: {row['label']}": measured(row) for _, row in cells.iterrows()},
    }  # fmt: skip
    return pd.DataFrame(columns, index=pd.Index(metrics, name="metric")).reset_index()


def flashdeal_async(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """FlashDeal phases 4 and 5 beside each closed-model run: requests counted as k6 counts them (orders and
    status polls), the latency of the answer to the order, the shares accepted and refused by a full queue, the
    time to a settled order, and duplicates (idempotency keys without exactly one order)."""
    published = published or published_baselines()
    four = published["flashdeal-devlog-04-async-order-processing"]["results"]
    five = published["flashdeal-devlog-05-idempotency-retries"]["results"]
    metrics = ["requests (with polls)", "req/s (with polls)", "answer p50", "answer p95", "accepted or placed",
               "queue full", "to settled p50", "to settled p95", "duplicates"]  # fmt: skip

    def measured(row: pd.Series) -> list[Any]:
        polls = _value(row, "meta.async.polls", 0)
        orders = row["requests"]
        taken = _value(row, "outcome.accepted", 0) + _value(row, "outcome.created", 0)
        return [
            orders + polls, (orders + polls) / row["duration_s"], row["latency_ms.p50"], row["latency_ms.p95"],
            taken / orders if orders else None, _value(row, "outcome.queue_full", 0) / orders if orders else None,
            _value(row, "meta.async.time_to_terminal_ms.p50"), _value(row, "meta.async.time_to_terminal_ms.p95"),
            _value(row, "audit.key_violations", 0),
        ]  # fmt: skip

    columns = {
        "FlashDeal phase 4": [None, four["rps"], four["latency_ms"]["p50"], four["latency_ms"]["p95"], None, None,
                              None, None, None],
        "FlashDeal phase 5 (20 % retries)": [
            five["requests"], five["rps"], five["latency_ms"]["p50"], five["latency_ms"]["p95"],
            five["accepted_share"], five["queue_overflow_share"], None, None, five["duplicates"],
        ],
        **{f"this project: {row['label']}": measured(row) for _, row in cells.iterrows()},
    }  # fmt: skip
    return pd.DataFrame(columns, index=pd.Index(metrics, name="metric")).reset_index()
