"""Cells already in data/ are read back, unless the sweep is asked to measure afresh (`sweep --fresh`): then every
cell is measured again and its row replaced, with the commit and the placement of the new run."""

from flashsale.experiments.cells import Cell, run_cells
from flashsale.experiments.store import Dataset
from flashsale.load import Closed, LoadConfig


def test_fresh_measures_every_cell_again(database_url, tmp_path):
    dataset = Dataset.named("fresh", tmp_path)
    cell = Cell(
        "pessimistic, 1 VU", LoadConfig(database_url=database_url, shape=Closed(vus=1, think_ms=0), duration_s=0.3)
    )
    measured: list[str] = []

    def count(cell: Cell, row: dict) -> None:
        measured.append(row["meta.started_at"])

    first, _ = run_cells(dataset, [cell], on_cell=count)
    run_cells(dataset, [cell], on_cell=count)
    assert len(measured) == 1  # read back
    fresh, _ = run_cells(dataset, [cell], on_cell=count, fresh=True)
    assert len(measured) == 2
    assert len(fresh) == 1  # replaced, not added
    assert fresh.loc[0, "meta.started_at"] == measured[1]  # the row is the new run's
    assert first.loc[0, "git_commit"] == fresh.loc[0, "git_commit"] != ""
    assert fresh.loc[0, "meta.placement.ran_on.client"] is not None
