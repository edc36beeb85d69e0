"""An experiment is a list of cells: one load run each (a LoadConfig and its repeat), plus, when asked, the
pgbench run of the same SQL at the same concurrency. Cells already measured with the same parameters are
read back from data/ instead of being run again."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from flashsale import strategies
from flashsale.experiments.store import Dataset

# A load's shape as cells name it: each of these parameters (LoadConfig's own fields until the shape was one) takes
# the shape's value where the shape has it and this default where not, so that the cells measured before keep
# their keys and columns. A new shape's own parameters add columns, in its cells only.
SHAPE_PARAMS: dict[str, Any] = {
    "vus": 10,
    "think_ms": 100.0,
    "think_jitter": 0.0,
    "rate": None,
    "stages": (),
    "spike": None,
    "max_inflight": 1000,
}


# Parameters added after cells were measured, with the value every earlier cell ran with: a cell at that value
# leaves the parameter out of its key (not out of its columns), so that it keeps the key it was measured under.
ADDED_LATER: dict[str, Any] = {
    "admission": "local",
    "user_burst": 0.0,
    "honour_retry_after": False,
    "retry_after_max_s": None,
}


class MissingData(LookupError):
    """Rendering from data alone, and a cell has never been measured."""


@dataclass(frozen=True)
class Cell:
    label: str  # what the reader sees: "pessimistic, 8 VUs"
    load: Any  # flashsale.load.LoadConfig
    repeat: int = 0
    pgbench: bool = False  # also run pgbench with the strategy's script at the same concurrency

    @property
    def params(self) -> dict[str, Any]:
        """The load's fields, flat: its shape's and its started service's parameters under their `flashsale load`
        names (`vus`, `rate`, ...; `service_workers`, `queue_size`, ...)."""
        fields: dict[str, Any] = {}
        for field in dataclasses.fields(self.load):
            value = getattr(self.load, field.name)
            if field.name == "shape":
                fields.update({**SHAPE_PARAMS, **value.params()})
            elif field.name == "service":
                fields.update(value.load_params())
            elif field.name != "progress":
                fields[field.name] = value
        return {
            k: (str(v) if v is not None and not isinstance(v, int | float | str | bool) else v)
            for k, v in fields.items()
        }

    @property
    def key(self) -> str:
        """Same parameters, same key: a changed duration or inventory is measured anew."""
        params = {k: v for k, v in self.params.items() if k not in ADDED_LATER or v != ADDED_LATER[k]}
        blob = json.dumps({**params, "repeat": self.repeat, "pgbench": self.pgbench}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def cell_id(self) -> str:
        params = self.params
        users = f"vus{params['vus']}" if params["rate"] is None else f"rate{params['rate']:g}"
        return f"{self.load.target}-{self.load.strategy}-{users}-r{self.repeat}-{self.key}"


def run_cells(
    dataset: Dataset,
    cells: Iterable[Cell],
    *,
    allow_load: bool = True,
    progress: bool = False,
    on_cell: Callable[[Cell, dict], None] | None = None,
    fresh: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every cell not yet in `dataset` (`fresh`: every cell, replacing what `dataset` holds of it); return
    (cells table, pgbench table) restricted to `cells`, in their order. Each row carries the commit that measured it
    (`git_commit`), which the reports show.

    With `allow_load=False` nothing is run: a missing cell raises MissingData (`flashsale report` renders from
    data alone).
    """
    from flashsale.experiments.context import collect_context

    cells = list(cells)
    done = dataset.read_cells()
    have = set(done["cell_id"]) if not done.empty else set()
    todo = [c for c in cells if fresh or c.cell_id not in have]
    if todo and not allow_load:
        missing = ", ".join(c.label for c in todo[:5])
        raise MissingData(
            f"{len(todo)} cells of dataset {dataset.name!r} were never measured ({missing}...): "
            "run the sweep first (make report, or flashsale sweep)"
        )
    if todo:
        bar = _progress(len(todo), progress)
        context = collect_context()
        for cell in todo:
            bar.set_description(cell.label)
            row = _measure(dataset, cell, context)
            if on_cell:
                on_cell(cell, row)
            bar.update(1)
        bar.close()
    table = tidy(_in_plan_order(dataset.read_cells(), cells))
    pgb = dataset.read_pgbench()
    if not pgb.empty:
        pgb = _in_plan_order(pgb, cells)
    return table, pgb


def _in_plan_order(table: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    """The rows of `table` that belong to `cells`, in the order of `cells` (the store keeps them in the order they
    were measured, which a rerun of some cells changes)."""
    position = {cell_id: i for i, cell_id in enumerate(dict.fromkeys(c.cell_id for c in cells))}
    mine = table[table["cell_id"].isin(position)]
    return mine.sort_values("cell_id", key=lambda ids: ids.map(position), kind="stable").reset_index(drop=True)


def _measure(dataset: Dataset, cell: Cell, context: dict[str, Any]) -> dict:
    from flashsale.load import run_load

    result = run_load(cell.load)
    result.to_parquet(dataset.requests_path(cell.cell_id))
    row = {
        "cell_id": cell.cell_id,
        "label": cell.label,
        "repeat": cell.repeat,
        "safe": strategies.STRATEGIES[cell.load.strategy].safe,
        **_flat(result.summary),
        **{f"param.{k}": v for k, v in cell.params.items()},
        **context,
    }
    dataset.upsert(dataset.cells_path, pd.DataFrame([row]))
    if cell.pgbench:
        _measure_pgbench(dataset, cell, context)
    return row


def _measure_pgbench(dataset: Dataset, cell: Cell, context: dict[str, Any]) -> None:
    """The cell's reference line, of either kind (pgbench, or redis-benchmark for the stock gate): `tps` holds its
    transactions or decisions per second; `error` why it has no figures (a failure, or the tool missing here)."""
    from flashsale.load.pgbench import PgbenchFailed
    from flashsale.load.redis_benchmark import RedisBenchmarkFailed
    from flashsale.load.reference import run_reference

    try:
        reference = run_reference(cell.load)
        row: dict[str, Any] = {
            "tps": reference.requests_per_s,
            "orders_per_s": reference.orders_per_s,
            "latency_avg_ms": reference.latency_avg_ms,
            "clients_used": reference.clients,
            "error": reference.missing,
        }
    except (PgbenchFailed, RedisBenchmarkFailed) as exc:
        row = {"tps": None, "orders_per_s": None, "latency_avg_ms": None, "clients_used": None, "error": str(exc)}
    row["tool"] = strategies.STRATEGIES[cell.load.strategy].reference_kind
    dataset.upsert(
        dataset.pgbench_path,
        pd.DataFrame(
            [
                {
                    "cell_id": cell.cell_id,
                    "strategy": cell.load.strategy,
                    "clients": cell.params["vus"],
                    "repeat": cell.repeat,
                    "duration_s": cell.load.duration_s,
                    **row,
                    **context,
                }
            ]
        ),
    )


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as flat, tidy columns (no JSON text to parse): `latency_ms.p95`, `audit.ok`, `outcome.<name>`
    (counts), `by_outcome.<name>.<stat>`, `fault.<key>` (the run's fault report, nested keys joined by dots) and
    `meta.<key>` for the rest of the run's metadata. What no column holds (lists of records, such as Locust's own
    figures) stays in the whole summary, in the metadata of the run's requests file (`flashsale.load.records`)."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if key in ("latency_ms", "audit"):
            flat.update({f"{key}.{k}": v for k, v in (value or {}).items()})
        elif key == "outcomes":
            flat.update({f"outcome.{k}": int(v) for k, v in (value or {}).items()})
        elif key == "by_outcome":
            flat.update(_dotted("by_outcome", value or {}))
        elif key == "meta":
            meta = dict(value or {})
            for i, fault in enumerate(meta.pop("faults", None) or []):
                flat.update(_dotted("fault" if i == 0 else f"fault{i + 1}", fault))
            flat.update(_dotted("meta", meta))
        else:
            flat[key] = value
    flat["created_p95_ms"] = (summary.get("by_outcome") or {}).get("created", {}).get("p95")
    return flat


def _dotted(prefix: str, value: Any) -> dict[str, Any]:
    """Nested dicts as one column per leaf (`prefix.a.b`); a list of plain values as one text column; other lists
    (of records, such as Locust's own statistics) are left out: the requests file holds the detail."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_dotted(f"{prefix}.{k}", v))
        return out
    if isinstance(value, list | tuple):
        if all(v is None or isinstance(v, int | float | str | bool) for v in value):
            return {prefix: "; ".join(str(v) for v in value)}
        return {}
    return {prefix: value if value is None or isinstance(value, int | float | str | bool) else str(value)}


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its outcome counts as whole numbers (0 where a run had none of that outcome: runs with other
    outcomes added the column)."""
    counts = [c for c in table if c.startswith("outcome.")]
    if counts:
        table[counts] = table[counts].fillna(0).astype(int)
    return table


def outcome_counts(cells: pd.DataFrame) -> pd.DataFrame:
    """One column per outcome (created, sold_out, busy, ...): how many requests of each run ended so."""
    columns = [c for c in cells if c.startswith("outcome.")]
    return cells[columns].fillna(0).astype(int).rename(columns=lambda c: c.removeprefix("outcome."))


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="cell", file=sys.stderr, disable=not enabled, leave=True)
