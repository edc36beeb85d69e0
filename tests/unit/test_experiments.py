"""The experiment plumbing: cells, their keys, the tidy store, the sweep file."""

import pandas as pd
import pytest

from flashsale.experiments.plans import UNLIMITED, plan, sweep_cells
from flashsale.experiments.store import Dataset
from flashsale.experiments.sweep import Sweep, declared_parameters


def grid(**changes):
    params = dict(
        strategies=["pessimistic"],
        vus=[1, 4],
        duration_s=1.0,
        warmup_s=0.0,
        think_ms=0.0,
        target="db",
        inventory=UNLIMITED,
        users=10,
        repeats=2,
        pgbench=True,
    )
    return sweep_cells(**{**params, **changes})


class TestCells:
    def test_grid_is_strategies_by_levels_by_repeats(self):
        cells = grid()
        assert [(c.load.vus, c.repeat) for c in cells] == [(1, 0), (4, 0), (1, 1), (4, 1)]
        assert all(c.pgbench for c in cells)

    def test_pgbench_only_for_the_db_target(self):
        assert not any(c.pgbench for c in grid(target="http"))

    def test_key_changes_with_any_parameter(self):
        a, b = grid()[0], grid(duration_s=2.0)[0]
        assert a.cell_id != b.cell_id
        assert grid()[0].cell_id == a.cell_id  # and is stable

    def test_plan_takes_the_notebooks_parameter_names(self):
        data, cells = plan(
            "3.0-lock-contention",
            dict(
                dataset="x",
                strategies=["pessimistic"],
                contention_vus=8,
                duration_s=1.0,
                warmup_s=0.0,
                target="db",
                users=5,
            ),
        )
        assert data.name == "x"
        assert [(c.load.strategy, c.load.vus) for c in cells] == [("pessimistic", 8), ("pessimistic", 1)]


class TestDataset:
    def test_upsert_replaces_rows_with_the_same_key(self, tmp_path):
        data = Dataset.named("d", tmp_path)
        data.upsert(data.cells_path, pd.DataFrame([{"cell_id": "a", "rps": 1.0}, {"cell_id": "b", "rps": 2.0}]))
        table = data.upsert(data.cells_path, pd.DataFrame([{"cell_id": "a", "rps": 3.0}]))
        assert sorted(zip(table["cell_id"], table["rps"], strict=True)) == [("a", 3.0), ("b", 2.0)]
        assert len(data.read_cells()) == 2

    @pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden"])
    def test_rejects_names_that_are_not_one_folder(self, name, tmp_path):
        with pytest.raises(ValueError, match="one plain folder"):
            Dataset.named(name, tmp_path)


class TestSweepFile:
    def test_default_sweep_names_only_declared_parameters(self):
        sweep = Sweep.load()
        assert [r.notebook for r in sweep.runs][:3] == [
            "1.0-devlog-baseline",
            "2.0-concurrency-sweep",
            "3.0-lock-contention",
        ]

    def test_override_reaches_only_notebooks_that_declare_it(self):
        sweep = Sweep.load().override(vus=[1, 2], duration_s=3.0, repeats=None)
        by_name = {r.notebook: r.parameters for r in sweep.runs}
        assert by_name["2.0-concurrency-sweep"]["vus"] == [1, 2]
        assert by_name["1.0-devlog-baseline"]["vus"] == 10  # an int there: the seed's 10 VUs, not a level list
        assert all(p["duration_s"] == 3.0 for p in by_name.values())

    def test_unknown_parameter_is_a_clear_error(self, tmp_path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("notebooks:\n  - notebook: 2.0-concurrency-sweep\n    parameters: {vuz: [1]}\n")
        with pytest.raises(ValueError, match="has no parameter vuz"):
            Sweep.load(bad)

    def test_unknown_notebook_is_a_clear_error(self, tmp_path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("notebooks:\n  - notebook: 9.9-nope\n")
        with pytest.raises(FileNotFoundError, match=r"known: 1\.0-devlog-baseline"):
            Sweep.load(bad)

    def test_declared_parameters_are_the_typed_defaults(self):
        assert declared_parameters("2.0-concurrency-sweep")["vus"] == [1, 2, 4, 8, 16, 32, 64, 128]


class TestAggregate:
    def test_mean_std_and_count_per_strategy_and_level_and_any_failed_audit(self):
        from flashsale.experiments.plots import aggregate

        cells = pd.DataFrame(
            {
                "strategy": ["a", "a", "a", "b", "b"],
                "vus": [1, 1, 4, 1, 1],
                "rps": [10.0, 20.0, 50.0, 7.0, 9.0],
                "audit.ok": [True, True, True, True, False],
            }
        )
        table = aggregate(cells, "rps")
        assert table.to_dict("records") == [
            {"strategy": "a", "vus": 1, "mean": 15.0, "std": pytest.approx(7.0710678), "min": 10.0, "max": 20.0,
             "count": 2, "oversold": False},
            {"strategy": "a", "vus": 4, "mean": 50.0, "std": 0.0, "min": 50.0, "max": 50.0, "count": 1,
             "oversold": False},
            {"strategy": "b", "vus": 1, "mean": 8.0, "std": pytest.approx(1.4142136), "min": 7.0, "max": 9.0,
             "count": 2, "oversold": True},
        ]  # fmt: skip
