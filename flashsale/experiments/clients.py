"""The seed's scenario from two clients: the load runner and k6 (the seed's own tool), on one service per repeat.

For each repeat of the baseline's sale that never sells out, a pair: `flashsale serve` is started once, the runner
measures the cell against it (a fresh sale, then its audit), and k6 runs the same scenario (`k6_seed.js`: the same
virtual users, pause and length) on the same service and sale; then the service stops. Both clients thus meet the
same process, pool and database state, and differ only in themselves. The runner always goes first (it makes the
sale k6 orders from), so it also meets the service's first requests.

A pair is measured together or not at all: a runner cell stored without its k6 run (older data) is measured again
with it. The runner's rows are ordinary cells (`cells.parquet`, same ids as the plan's); k6's are `k6.parquet`, one
row per pair with the runner cell's id, in the runner's column names (`analysis.clients_side_by_side`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from flashsale import placement
from flashsale.experiments.cells import Cell, MissingData, run_cells
from flashsale.experiments.store import Dataset


@dataclass(frozen=True)
class _OnService(Cell):
    """A cell run against a service started for it: the same parameters, key and id as the plan's cell, since the
    service's URL (a free port of the moment) is not a parameter of the measurement, and the service's CPUs
    (`service_cpus`, which the pair gives the service it starts) are still the plan's."""

    service_cpus: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "base_url": None, "service_cpus": self.service_cpus}


def k6_path(dataset: Dataset):
    return dataset.root / "k6.parquet"


def read_k6(dataset: Dataset) -> pd.DataFrame:
    path = k6_path(dataset)
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def run_with_k6(
    dataset: Dataset,
    cells: Iterable[Cell],
    *,
    paired: str,
    allow_load: bool = True,
    progress: bool = False,
    fresh: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`run_cells` for `cells`, where those labelled `paired` (of the http target) are measured in pairs with k6
    (see the module); returns (the cells table, k6's runs of the paired cells). With `allow_load=False` a missing
    pair raises MissingData; with `fresh` every cell and pair is measured again."""
    cells = list(cells)
    pairs = [c for c in cells if c.label == paired and c.load.target == "http"]  # k6 speaks HTTP only
    have = read_k6(dataset)
    todo = [c for c in pairs if fresh or have.empty or c.cell_id not in set(have["cell_id"])]
    if todo and not allow_load:
        raise MissingData(
            f"{len(todo)} k6 runs of dataset {dataset.name!r} were never measured ({paired}): "
            "run the sweep first (make report, or flashsale sweep)"
        )
    for cell in todo:
        if progress:
            print(f"  {cell.label}, repeat {cell.repeat + 1}: the runner, then k6, on one service", file=sys.stderr)
        _measure_pair(dataset, cell)
    measured = {c.cell_id for c in todo}  # a fresh sweep measured these just now, with their k6 runs
    rest = [c for c in cells if c.cell_id not in measured]
    run_cells(dataset, rest, allow_load=allow_load, progress=progress, fresh=fresh)
    table, _ = run_cells(dataset, cells, allow_load=False)
    k6 = read_k6(dataset)
    k6 = k6[k6["cell_id"].isin([c.cell_id for c in pairs])] if not k6.empty else k6
    return table, k6.reset_index(drop=True)


def _measure_pair(dataset: Dataset, cell: Cell) -> None:
    from flashsale import config
    from flashsale.db.migrate import ready_url
    from flashsale.load.k6 import seed_scenario
    from flashsale.load.placing import database_placed
    from flashsale.load.shapes import Closed
    from flashsale.serving.server_process import ServerProcess

    load = cell.load
    closed = load.shape  # k6's scenario is the closed model's: its VUs and think time
    if not isinstance(closed, Closed):
        raise ValueError(f"k6 runs the closed model (virtual users), not {cell.label!r}")
    _forget(dataset, cell.cell_id)  # a runner cell without its k6 run is measured again, with it
    url = ready_url(load.database_url)
    env = {config.DATABASE_URL_ENV: url}
    with (
        database_placed(url, load.db_cpus),
        ServerProcess(
            strategy=load.strategy,
            pool_size=load.effective_pool_size,
            access_log=False,
            env=env,
            cpus=load.placement.service_cpus,
        ) as server,
    ):
        started = replace(load, base_url=server.url, service_cpus=None)
        on_service = _OnService(cell.label, started, cell.repeat, cell.pgbench, service_cpus=load.service_cpus)
        assert on_service.cell_id == cell.cell_id
        table, _ = run_cells(dataset, [on_service], fresh=True)
        sale = str(table.iloc[0]["meta.flash_sale_id"])
        with placement.pinned_thread(load.client_cpus):  # k6 on the client's CPUs, as the runner was
            figures = seed_scenario(
                server.url, sale, vus=closed.vus, think_ms=closed.think_ms, duration_s=load.duration_s
            )
    row = {"cell_id": cell.cell_id, "label": cell.label, "repeat": cell.repeat, "client": "k6", **figures}
    dataset.upsert(k6_path(dataset), pd.DataFrame([row]))


def _forget(dataset: Dataset, cell_id: str) -> None:
    """Drop a stored cell row (its requests file is overwritten when it is measured again)."""
    cells = dataset.read_cells()
    if not cells.empty and cell_id in set(cells["cell_id"]):
        cells[cells["cell_id"] != cell_id].to_parquet(dataset.cells_path, index=False)
