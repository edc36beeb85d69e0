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
from flashsale.repositories import audits

# The measured throughput is "at" a bound when it is within this share of it.
BOUND_TOLERANCE = 0.03


def strategy_label(name: str) -> str:
    """The strategy's name, marked UNSAFE for the counter-examples."""
    cls = strategies.STRATEGIES.get(name)
    return f"{name} (UNSAFE)" if cls is not None and not cls.safe else name


# --- repeats: every headline figure is the median of its runs, with their range -----------------------------------


def spread(cells: pd.DataFrame, by: str | list[str], metric: str) -> pd.DataFrame:
    """Per group of `by` (a column or several; groups in the order first seen): the median of `metric` over the
    group's runs, their range (`min`, `max`) and how many runs measured it (`n`)."""
    by = [by] if isinstance(by, str) else list(by)
    grouped = cells.groupby(by, sort=False)[metric]
    return grouped.agg(median="median", min="min", max="max", n="count").reset_index()


def median_range(values: Any, pattern: str = "{:,.2f}") -> str:
    """A figure over its repeats as "median (min–max)", each number by `pattern`; the value alone where the runs
    agree (or there is one), "–" where there is none."""
    present = pd.Series(values, dtype=float).dropna()
    if present.empty:
        return "–"
    median = pattern.format(present.median())
    if present.min() == present.max():
        return median
    return f"{median} ({pattern.format(present.min())}–{pattern.format(present.max())})"


def medians(cells: pd.DataFrame, by: str = "label") -> pd.DataFrame:
    """The median over each group's repeats of every numeric column, indexed by `by` (groups in the order first
    seen), with `runs`: what a sentence quotes of a run measured several times."""
    grouped = cells.groupby(by, sort=False)
    numeric = [c for c in cells.select_dtypes("number").columns if c != by]
    out = grouped[numeric].median()
    out["runs"] = grouped.size()
    return out


def first_runs(cells: pd.DataFrame, by: str = "label") -> pd.DataFrame:
    """The first repeat of each group, in the order first seen, indexed by `by`: the run a time series shows."""
    return cells.drop_duplicates(subset=by).set_index(by)


def _pattern(metric: str, counts: tuple[str, ...] = (), shares: tuple[str, ...] = ()) -> str:
    return "{:,.0f}" if metric in counts else "{:.1%}" if metric in shares else "{:,.2f}"


def over_repeats(
    cells: pd.DataFrame,
    measured: Any,
    metrics: list[str],
    *,
    counts: tuple[str, ...] = (),
    shares: tuple[str, ...] = (),
    by: str = "label",
    prefix: str = "this project: ",
) -> dict[str, list[Any]]:
    """One column per group of `by`: each figure `measured(row)` gives (a value per metric) as "median (min–max)"
    over the group's runs, then the number of runs (the `runs` row of the headline tables)."""
    out: dict[str, list[Any]] = {}
    for name, group in cells.groupby(by, sort=False):
        runs = pd.DataFrame([list(measured(row)) for _, row in group.iterrows()], columns=metrics)
        out[f"{prefix}{name}"] = [median_range(runs[m], _pattern(m, counts, shares)) for m in metrics] + [len(group)]
    return out


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

BASELINE_METRICS = ["RPS", "requests", "avg", "p50", "p90", "p95", "p99", "max", "orders created",
                    "created-only p95"]  # fmt: skip
BASELINE_COUNTS = ("requests", "orders created", "runs")


def published_baselines() -> dict[str, Any]:
    """The seed's published load-test figures (`data/reference/seed-baselines.json`)."""
    return json.loads((config.REFERENCE_DIR / "seed-baselines.json").read_text())


def baseline_side_by_side(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """The seed's figures, the later FlashDeal devlog's run of the same scenario and this project's runs, one
    column each (the median and range of each label's repeats), one row per metric (latencies in ms), and `runs`."""
    published = published or published_baselines()
    seed = published["devlog-02-naive-concurrency"]["results"]
    later = published["flashdeal-devlog-02-observability-first"]["results"]

    def measured(row: pd.Series) -> list[Any]:
        latency = [row[f"latency_ms.{k}"] for k in ("avg", "p50", "p90", "p95", "p99", "max")]
        return [row["rps"], row["requests"], *latency, row["orders"], row["created_p95_ms"]]

    columns = {
        "seed devlog 02": {"RPS": seed["rps"], **seed["latency_ms"]},
        "FlashDeal devlog 02 (30 s)": {
            "RPS": later["rps"],
            "requests": later["requests"],
            **later["latency_ms"],
            "created-only p95": later["created_only_latency_ms"]["p95"],
            "runs": 1,
        },
    }
    side = pd.DataFrame(columns).reindex([*BASELINE_METRICS, "runs"])
    ours = over_repeats(cells, measured, BASELINE_METRICS, counts=BASELINE_COUNTS)
    side = pd.concat([side, pd.DataFrame(ours, index=side.index)], axis=1)
    side.index.name = "metric"
    return side.reset_index()


# --- two clients, one service: the load runner beside k6 (flashsale.experiments.clients) --------------------------

CLIENT_AGREEMENT = 0.10  # the runner's p50 and p95 within 10 % of k6's
CLIENT_METRICS = {"RPS": "rps", "requests": "requests", **{k: f"latency_ms.{k}" for k in ("p50", "p95", "p99", "max")}}


def _paired(runner: pd.DataFrame, k6: pd.DataFrame) -> pd.DataFrame:
    """The runner's cells and k6's runs of the same pairs, side by side (`<column>_runner`, `<column>_k6`)."""
    return runner.merge(k6, on="cell_id", suffixes=("_runner", "_k6"))


def clients_side_by_side(runner: pd.DataFrame, k6: pd.DataFrame) -> pd.DataFrame:
    """One row per figure (RPS, requests, p50, p95, p99, max): the runner's and k6's, each the median (min–max)
    of the pairs, and the runner / k6 ratio (the median and range of each pair's own ratio)."""
    both = _paired(runner, k6)
    rows = []
    for name, column in CLIENT_METRICS.items():
        pattern = _pattern(name, counts=("requests",))
        mine, theirs = both[f"{column}_runner"].astype(float), both[f"{column}_k6"].astype(float)
        rows.append(
            {
                "metric": name,
                "load runner": median_range(mine, pattern),
                "k6": median_range(theirs, pattern),
                "runner / k6": median_range(mine / theirs, "{:.2f}"),
            }
        )
    return pd.DataFrame(rows)


def clients_reading(runner: pd.DataFrame, k6: pd.DataFrame, tolerance: float = CLIENT_AGREEMENT) -> str:
    """Whether the two clients agree: the median of the pairs' p50 and p95 ratios each within `tolerance` of 1."""
    both = _paired(runner, k6)
    if both.empty:
        return "No pair of runs was measured: nothing to compare."
    ratios = {k: float((both[f"latency_ms.{k}_runner"] / both[f"latency_ms.{k}_k6"]).median()) for k in ("p50", "p95")}
    apart = {k: r for k, r in ratios.items() if abs(r - 1) > tolerance}
    said = " and ".join(f"{k} {r:.2f}x" for k, r in ratios.items())
    pairs = f"over {len(both)} pair(s) of runs on one service each"
    if not apart:
        return f"The two clients **agree within {tolerance:.0%}** on p50 and p95 (runner / k6: {said}, {pairs})."
    return (
        f"The two clients **do not agree within {tolerance:.0%}** on {' and '.join(apart)} (runner / k6: {said}, "
        f"{pairs}): one of them measures its own overhead as well."
    )


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


def concurrency_summary(cells: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per strategy and level, the median of its repeats: throughput, goodput and its range over the
    repeats, with `reference` pgbench's orders/s at that level and the driver's share of it (`driver_vs_pgbench`),
    latency percentiles (p50, p95 with its range, p99, max), row-lock waiters, the client's CPU, the audit (ok or
    OVERSOLD) and the number of runs."""
    summary = (
        cells.groupby(["strategy", "vus"], sort=False)
        .agg(
            rps=("rps", "median"),
            orders_per_s=("orders_per_s", "median"),
            orders_per_s_min=("orders_per_s", "min"),
            orders_per_s_max=("orders_per_s", "max"),
            p50=("latency_ms.p50", "median"),
            p95=("latency_ms.p95", "median"),
            p95_min=("latency_ms.p95", "min"),
            p95_max=("latency_ms.p95", "max"),
            p99=("latency_ms.p99", "median"),
            max=("latency_ms.max", "median"),
            lock_waiters=("lock_waiters_mean", "median"),
            client_cpu=("client_cpu_percent", "median"),
            audit_ok=("audit.ok", "all"),
            runs=("rps", "size"),
        )
        .reset_index()
    )
    _range_column(summary, "orders_per_s", "orders/s range", "{:,.0f}")
    _range_column(summary, "p95", "p95 range", "{:,.2f}")
    ratio = driver_vs_pgbench(cells, reference) if reference is not None else pd.DataFrame()
    if not ratio.empty:
        pgbench = ratio[["strategy", "vus", "pgbench orders/s", "driver / pgbench"]]
        summary = summary.merge(pgbench, on=["strategy", "vus"], how="left")
        after = summary.columns.get_loc("orders/s range") + 1
        moved = ["pgbench orders/s", "driver / pgbench"]
        rest = [c for c in summary.columns if c not in moved]
        summary = summary[[*rest[:after], *moved, *rest[after:]]]
    summary["audit"] = summary.pop("audit_ok").map({True: "ok", False: "OVERSOLD"})
    summary["strategy"] = summary["strategy"].map(strategy_label)
    return summary.rename(columns=SUMMARY_NAMES)


def _range_column(summary: pd.DataFrame, after: str, name: str, pattern: str) -> None:
    """Put "min–max" of the repeats (from the `<after>_min` and `<after>_max` columns, dropped) as column `name`
    after `after`; the value alone where they are one."""
    lo, hi = summary.pop(f"{after}_min"), summary.pop(f"{after}_max")
    text = [
        pattern.format(a) if a == b else f"{pattern.format(a)}–{pattern.format(b)}" for a, b in zip(lo, hi, strict=True)
    ]
    summary.insert(summary.columns.get_loc(after) + 1, name, text)


# The summary's columns as a reader sees them.
SUMMARY_NAMES = {
    "vus": "VUs",
    "rps": "requests/s",
    "orders_per_s": "orders/s",
    "lock_waiters": "row-lock waiters",
    "client_cpu": "client CPU",
}


def concurrency_peaks(cells: pd.DataFrame) -> pd.DataFrame:
    """Each safe strategy's peak: the level where the median of its repeats' orders/s is highest, with that
    median, its range and the runs (strategy, vus, median, min, max, n), highest first."""
    safe = cells[cells["safe"].astype(bool)]
    levels = spread(safe, ["strategy", "vus"], "orders_per_s")
    best = levels.loc[levels.groupby("strategy", sort=False)["median"].idxmax()]
    return best.sort_values("median", ascending=False).reset_index(drop=True)


def best_strategy_reading(cells: pd.DataFrame) -> str:
    """The best safe strategy against `pessimistic` (peak of the medians of orders/s over the repeats, with their
    range), and whether every run passed its audit."""
    lines = []
    peaks = concurrency_peaks(cells).set_index("strategy")
    others = [name for name in peaks.index if name != "pessimistic"]

    def at(name: str) -> str:
        p = peaks.loc[name]
        runs = f"range {p['min']:,.0f}–{p['max']:,.0f} over {int(p['n'])} runs" if p["n"] > 1 else "one run"
        return f"{p['median']:,.0f} orders/s at {int(p['vus'])} VUs ({runs})"

    if "pessimistic" in peaks.index and others:
        top = others[0]
        lines.append(
            f"The best safe strategy, **{top}**, peaks at {at(top)}: "
            f"**{peaks.loc[top, 'median'] / peaks.loc['pessimistic', 'median']:.1f}x** the naive `pessimistic` flow "
            f"({at('pessimistic')}; medians of the repeats)."
        )
    lines.append(audit_reading(cells))
    return " ".join(lines)


def audit_reading(cells: pd.DataFrame, *, by: str = "strategy") -> str:
    """Whether every run passed its audit, or how many failed (named by their `by`)."""
    bad = cells[~cells["audit.ok"].astype(bool)]
    if len(bad):
        return f"**{len(bad)} run(s) failed the audit** ({', '.join(sorted(set(bad[by])))})."
    return "Every run passed the audit: nothing oversold, no user above the limit."


def driver_vs_pgbench(cells: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Orders/s of the in-process driver against pgbench replaying the same SQL at the same concurrency (1.0: no
    client overhead), per strategy and level where both were measured (medians of the repeats)."""
    columns = ["strategy", "vus", "driver orders/s", "pgbench orders/s", "driver / pgbench"]
    if reference.empty or "orders_per_s" not in reference:
        return pd.DataFrame(columns=columns)
    driver = cells.groupby(["strategy", "vus"], sort=False)["orders_per_s"].median()
    pgbench = reference.groupby(["strategy", "clients"])["orders_per_s"].median().rename_axis(["strategy", "vus"])
    both = pd.concat([driver.rename(columns[2]), pgbench.rename(columns[3])], axis=1, join="inner").dropna()
    both[columns[4]] = both[columns[2]] / both[columns[3]]
    return both.reset_index()[columns]


# --- outcomes and audits -------------------------------------------------------------------------------------------


def outcome_latency_table(cells: pd.DataFrame, *, label: str = "label") -> pd.DataFrame:
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
    their `audit.` prefix and with spaces; with the run's `repeat` (counted from 1) where a run was repeated."""
    present = [c for c in columns if f"audit.{c}" in cells]
    repeated = "repeat" in cells and cells["repeat"].nunique() > 1
    table = cells[[label, *(["repeat"] if repeated else []), *(f"audit.{c}" for c in present)]].copy()
    table.columns = [label, *(["repeat"] if repeated else []), *(c.replace("_", " ") for c in present)]
    if repeated:
        table["repeat"] = table["repeat"] + 1
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
    """One sentence per fault run: the outage (of the database, or of Redis), the failures and how fast they came,
    the recovery."""
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
        server = "the database" if r.get("server") in (None, "database") else r["server"]  # a Redis fault says so
        lines.append(
            f"- **{cell[label]}**: {server} was down {r['unavailable_s']:.2f} s; {failed}; the first order "
            f"after it succeeded {r['recovery_s']:.2f} s after the fault, {r['lag_s']:.2f} s after {server} "
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
    rows = pd.read_sql(audits.EVERY_SALE_SQL, engine)  # the load runner's audit query, of every sale
    sold = rows["confirmed_quantity"]
    return pd.DataFrame(
        {
            "flash_sale_id": rows["flash_sale_id"],
            "inventory": rows["total"],
            "remaining": rows["remaining"],
            "sold": sold,
            "orders": rows["orders"],
            "oversold": (sold - rows["total"]).clip(lower=0),
            "limit_violations": rows["limit_violations"],
        }
    )


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


ADMISSION_METRICS = ["requests", "req/s", "avg", "p50", "p95", "p99", "max", "created", "sold out", "rate limited",
                     "queue full"]  # fmt: skip
ADMISSION_COUNTS = ("requests", "created", "sold out", "rate limited", "queue full", "runs")


def flashdeal_admission(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """FlashDeal phase 3's figures beside each run's (one column each, the median and range of its repeats;
    latencies in ms), and the number of runs."""
    published = published or published_baselines()
    phase = published["flashdeal-devlog-03-admission-control"]["results"]

    def measured(row: pd.Series) -> list[Any]:
        return [
            row["requests"], row["rps"], *(row[f"latency_ms.{k}"] for k in ("avg", "p50", "p95", "p99", "max")),
            *(_value(row, f"outcome.{name}", 0) for name in ("created", "sold_out", "rate_limited", "queue_full")),
        ]  # fmt: skip

    columns = {
        "FlashDeal phase 3 (30 s)": [
            phase["requests"], phase["rps"], *(phase["latency_ms"].get(k) for k in ("avg", "p50", "p95", "p99", "max")),
            *(phase["outcomes"][k] for k in ("created", "sold_out", "rate_limited", "queue_overflow")), 1,
        ],
        **over_repeats(cells, measured, ADMISSION_METRICS, counts=ADMISSION_COUNTS),
    }  # fmt: skip
    return pd.DataFrame(columns, index=pd.Index([*ADMISSION_METRICS, "runs"], name="metric")).reset_index()


ASYNC_METRICS = ["requests (with polls)", "req/s (with polls)", "answer p50", "answer p95", "answer p99", "answer max",
                 "accepted or placed", "queue full", "to settled p50", "to settled p95", "duplicates"]  # fmt: skip
ASYNC_COUNTS = ("requests (with polls)", "duplicates", "runs")
ASYNC_SHARES = ("accepted or placed", "queue full")


def flashdeal_async(cells: pd.DataFrame, published: dict[str, Any] | None = None) -> pd.DataFrame:
    """FlashDeal phases 4 and 5 beside each closed-model run (the median and range of its repeats): requests counted
    as k6 counts them (orders and status polls), the latency of the answer to the order, the shares accepted and
    refused by a full queue, the time to a settled order, and duplicates (idempotency keys without exactly one
    order); then the number of runs."""
    published = published or published_baselines()
    four = published["flashdeal-devlog-04-async-order-processing"]["results"]
    five = published["flashdeal-devlog-05-idempotency-retries"]["results"]

    def measured(row: pd.Series) -> list[Any]:
        polls = _value(row, "meta.async.polls", 0)
        orders = row["requests"]
        taken = _value(row, "outcome.accepted", 0) + _value(row, "outcome.created", 0)
        return [
            orders + polls, (orders + polls) / row["duration_s"],
            *(row[f"latency_ms.{k}"] for k in ("p50", "p95", "p99", "max")),
            taken / orders if orders else None, _value(row, "outcome.queue_full", 0) / orders if orders else None,
            _value(row, "meta.async.time_to_terminal_ms.p50"), _value(row, "meta.async.time_to_terminal_ms.p95"),
            _value(row, "audit.key_violations", 0),
        ]  # fmt: skip

    columns = {
        "FlashDeal phase 4": [None, four["rps"], four["latency_ms"]["p50"], four["latency_ms"]["p95"], None, None,
                              None, None, None, None, None, 1],
        "FlashDeal phase 5 (20 % retries)": [
            five["requests"], five["rps"], five["latency_ms"]["p50"], five["latency_ms"]["p95"], None, None,
            five["accepted_share"], five["queue_overflow_share"], None, None, five["duplicates"], 1,
        ],
        **over_repeats(cells, measured, ASYNC_METRICS, counts=ASYNC_COUNTS, shares=ASYNC_SHARES),
    }  # fmt: skip
    return pd.DataFrame(columns, index=pd.Index([*ASYNC_METRICS, "runs"], name="metric")).reset_index()


# --- FlashDeal's phase 7: Redis in front (admission shared by every process, the stock gate, Redis lost) -----------


@dataclass(frozen=True)
class RedisFront:
    """The three parts of the 7.0 notebook's cells (`plans.redis_front_cells`): the admission runs over HTTP, the
    stock gate against the database's designs (in-process), and the runs with a fault."""

    admission: pd.DataFrame
    gate: pd.DataFrame
    faulted: pd.DataFrame


def redis_front_parts(cells: pd.DataFrame) -> RedisFront:
    faulted = cells["fault.fault"].notna() if "fault.fault" in cells else pd.Series(False, index=cells.index)
    gate = cells["target"] == "db"
    return RedisFront(admission=cells[~gate & ~faulted], gate=cells[gate], faulted=cells[faulted])


def admitted_per_user(cells: pd.DataFrame) -> pd.DataFrame:
    """Per admission run: how many orders a second each user sent (`offered`) and had admitted by the rate limit
    (`admitted`: every answer but 429 `rate_limited`, whatever came after it), on average over the run's users, and
    `admitted` as a multiple of the limit (`times`). With every user sending more than the limit, the limit holds
    for the whole service when `times` is 1, and per process when it is the number of processes."""
    limited = cells.get("outcome.rate_limited", pd.Series(0, index=cells.index)).fillna(0)
    per_user_s = cells["duration_s"] * cells["param.users"]
    out = pd.DataFrame(
        {
            "label": cells["label"],
            "repeat": cells["repeat"],
            "admission": cells["param.admission"],
            "processes": cells["param.service_workers"].astype(int),
            "limit": cells["param.user_rate"],
            "offered": cells["requests"] / per_user_s,
            "admitted": (cells["requests"] - limited) / per_user_s,
        }
    )
    out["times"] = out["admitted"] / out["limit"]
    return out.reset_index(drop=True)


def admission_per_user_table(cells: pd.DataFrame) -> pd.DataFrame:
    """`admitted_per_user` over the repeats, one row a set-up: each figure as "median (min–max)"."""
    runs = admitted_per_user(cells)
    rows = []
    for label, group in runs.groupby("label", sort=False):
        first = group.iloc[0]
        rows.append(
            {
                "set-up": label,
                "admission": first["admission"],
                "processes": int(first["processes"]),
                "limit (orders/s per user)": f"{first['limit']:g}",
                "sent per user (orders/s)": median_range(group["offered"], "{:,.1f}"),
                "admitted per user (orders/s)": median_range(group["admitted"], "{:,.2f}"),
                "admitted / limit": median_range(group["times"], "{:.2f}"),
                "runs": len(group),
            }
        )
    return pd.DataFrame(rows)


def gate_comparison(cells: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The stock gate against the database's designs, one row a strategy and sale (the median (min–max) of its
    repeats): requests/s, orders/s, p50 and p95 latency, PostgreSQL transactions per request, the reference line's
    requests/s (pgbench's transactions, redis-benchmark's decisions) with its tool in brackets, and the audit."""
    rows = []
    refs = reference if reference is not None and not reference.empty else pd.DataFrame(columns=["cell_id"])
    for label, group in cells.groupby("label", sort=False):
        ref = refs[refs["cell_id"].isin(group["cell_id"])]
        ref = ref[ref["tps"].notna()] if "tps" in ref else ref
        rows.append(
            {
                "strategy": group["strategy"].iloc[0],
                "sale": label.split(", ", 1)[1],
                "requests/s": median_range(group["rps"], "{:,.0f}"),
                "orders/s": median_range(group["orders_per_s"], "{:,.0f}"),
                "p50 (ms)": median_range(group["latency_ms.p50"]),
                "p95 (ms)": median_range(group["latency_ms.p95"]),
                "PG transactions / request": median_range(group["meta.pg_transactions.per_request"], "{:.3f}"),
                "reference line (requests/s)": (
                    f"{median_range(ref['tps'], '{:,.0f}')} ({ref['tool'].iloc[0]})" if len(ref) else "–"
                ),
                "audit": "ok" if group["audit.ok"].astype(bool).all() else "FAILED",
                "runs": len(group),
            }
        )
    return pd.DataFrame(rows)


REDIS_AUDIT_COLUMNS = ("ok", "orders", "oversold", "acknowledged_missing", "remaining", "gate_stock",
                       "gate_disagreements")  # fmt: skip
