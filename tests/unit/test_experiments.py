"""The experiment plumbing: cells, their keys, the tidy store, the sweep file."""

import pandas as pd
import pytest

from flashsale.experiments.cells import Cell
from flashsale.experiments.plans import UNLIMITED, concurrency_cells, plan
from flashsale.experiments.store import Dataset
from flashsale.experiments.sweep import Sweep, declared_parameters
from flashsale.http.settings import ServiceSettings
from flashsale.load import Closed, LoadConfig, Open, Ramping, Spike


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
    return concurrency_cells(**{**params, **changes})


class TestCells:
    def test_grid_is_strategies_by_levels_by_repeats(self):
        cells = grid()
        assert [(c.load.shape.vus, c.repeat) for c in cells] == [(1, 0), (4, 0), (1, 1), (4, 1)]
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
        assert [(c.load.strategy, c.load.shape.vus) for c in cells] == [("pessimistic", 8), ("pessimistic", 1)]


# Cells measured before the load's shape was one field (vus, think_ms, rate, stages, spike, ... were LoadConfig's
# own): their ids (and keys) as that code computed them. Data in data/ is matched by these ids: a change re-measures
# every cell of every notebook.
QUEUE = ServiceSettings(queue_size=100, queue_workers=1)
MEASURED_BEFORE = [
    ("db-pessimistic-vus10-r0-d93a5b0a1a70", Cell("defaults", LoadConfig())),
    (
        "db-atomic-vus8-r1-4d64e5196e33",
        Cell(
            "sweep",
            LoadConfig(
                strategy="atomic", shape=Closed(vus=8, think_ms=0.0), duration_s=2.0, warmup_s=0.5, users=1000,
                inventory=UNLIMITED, per_user_limit=UNLIMITED, seed=1,
            ),
            repeat=1,
            pgbench=True,
        ),
    ),
    (
        "http-pessimistic-vus10-r0-8fb0d5312c54",
        Cell(
            "whole think time, jitter",
            LoadConfig(target="http", shape=Closed(vus=10, think_ms=100, think_jitter=0.5), duration_s=15.0, workers=2),
        ),
    ),
    (
        "db-pessimistic-rate40-r0-97f91c86f96b",
        Cell("whole rate", LoadConfig(shape=Open(rate=40, max_inflight=256), duration_s=1.0, inventory=10)),
    ),
    (
        "http-pessimistic-rate250-r0-de966aeb6f9c",
        Cell(
            "rate, fault, retries",
            LoadConfig(
                target="http", shape=Open(rate=250.0), duration_s=3.0, faults=("db-stop@1s:1s",), retry_rate=0.2
            ),
        ),
    ),
    (
        "db-pessimistic-vus10-r0-0c0d4c6b80df",
        Cell("stages", LoadConfig(shape=Ramping(((0, 0), (1, 200), (2, 200))), duration_s=2.0)),
    ),
    (
        "http-pessimistic-vus10-r2-f96cbc687476",
        Cell(
            "spike, async",
            LoadConfig(
                target="http", users=2000, shape=Spike(2000, 2), duration_s=2.0, sale_opens_s=0.5, pool_size=16,
                service=QUEUE.replace(accept="async"), poll_interval_s=0.2,
            ),
            repeat=2,
        ),
    ),
]  # fmt: skip


class TestKeysOfMeasuredCells:
    """A cell keeps the key and the parameters it had when the shape was three exclusive fields of LoadConfig."""

    @pytest.mark.parametrize(("cell_id", "cell"), MEASURED_BEFORE, ids=[c.label for _, c in MEASURED_BEFORE])
    def test_a_cell_keeps_its_id(self, cell_id, cell):
        assert cell.cell_id == cell_id

    def test_every_shape_names_every_shape_parameter_with_their_defaults_where_it_has_none(self):
        shapes = {cell.label: cell.params for _, cell in MEASURED_BEFORE}
        columns = ("vus", "think_ms", "think_jitter", "rate", "stages", "spike", "max_inflight")
        assert {k: shapes["defaults"][k] for k in columns} == {
            "vus": 10, "think_ms": 100.0, "think_jitter": 0.0, "rate": None, "stages": "()", "spike": None,
            "max_inflight": 1000,
        }  # fmt: skip
        assert {k: shapes["spike, async"][k] for k in columns} == {
            "vus": 10, "think_ms": 100.0, "think_jitter": 0.0, "rate": None, "stages": "()", "spike": "(2000, 2.0)",
            "max_inflight": 1000,
        }  # fmt: skip
        assert shapes["stages"]["stages"] == "((0.0, 0.0), (1.0, 200.0), (2.0, 200.0))"
        assert "shape" not in shapes["defaults"]


class TestOptionsAddedLater:
    def test_an_option_added_later_changes_the_key_only_when_it_is_set(self):
        """Columns for every cell, so that a table can be grouped by them; the key only when set."""
        off = Cell("phase 3", LoadConfig(target="http", shape=Closed(vus=150, think_ms=0)))
        on = Cell("phase 3, honouring", off.load.replace(honour_retry_after=True))
        capped = Cell("phase 3, honouring up to 5 s", on.load.replace(retry_after_max_s=5.0))
        shared = Cell("phase 3, shared", off.load.replace(service=ServiceSettings(admission="redis", user_rate=10)))
        assert (off.params["honour_retry_after"], off.params["retry_after_max_s"]) == (False, None)
        assert (off.params["admission"], shared.params["admission"]) == ("local", "redis")
        assert on.params["honour_retry_after"] is True
        assert capped.params["retry_after_max_s"] == 5.0
        assert len({off.cell_id, on.cell_id, capped.cell_id, shared.cell_id}) == 4
        unset = off.load.replace(service=ServiceSettings(user_rate=10))
        assert Cell("x", unset).key != shared.key  # admission differs, so does the key


BASELINE = dict(target="http", strategy="pessimistic", vus=10, think_ms=100.0, duration_s=1.0, users=100)


class TestRepeatedPlans:
    def test_baseline_repeats_each_sale_with_its_own_seed_and_keeps_the_first_repeats_id(self):
        from flashsale.experiments.plans import NEVER_SELLS_OUT, baseline_cells

        cells = baseline_cells(**BASELINE, repeats=3)
        assert [(c.label == NEVER_SELLS_OUT, c.repeat, c.load.seed) for c in cells] == [
            (False, 0, 0), (True, 0, 0), (False, 1, 1), (True, 1, 1), (False, 2, 2), (True, 2, 2)
        ]  # fmt: skip
        assert len({c.cell_id for c in cells}) == 6
        once = baseline_cells(**BASELINE)
        assert [c.cell_id for c in once] == [c.cell_id for c in cells[:2]]  # data measured before stays valid

    @pytest.mark.parametrize(
        ("notebook", "per_repeat"),
        [("1.0-devlog-baseline", 2), ("5.0-admission-control", 4), ("6.0-async-orders", 4)],
    )
    def test_the_headline_notebooks_take_repeats(self, notebook, per_repeat):
        parameters = {**declared_parameters(notebook), "repeats": 3}
        _, cells = plan(notebook, parameters)
        assert [c.repeat for c in cells] == [r for r in range(3) for _ in range(per_repeat)]
        assert declared_parameters(notebook)["repeats"] >= 3  # the notebook's own default


class TestClientsOnOneService:
    def test_a_cell_run_against_a_started_service_keeps_the_plans_id(self):
        from dataclasses import replace

        from flashsale.experiments.clients import _OnService
        from flashsale.experiments.plans import baseline_cells

        cell = baseline_cells(**BASELINE, repeats=2)[3]
        on_service = _OnService(cell.label, replace(cell.load, base_url="http://127.0.0.1:5"), cell.repeat)
        assert on_service.load.base_url == "http://127.0.0.1:5"
        assert on_service.cell_id == cell.cell_id
        assert on_service.params["base_url"] is None

    def test_without_data_a_missing_pair_says_what_to_run(self, tmp_path):
        from flashsale.experiments.cells import MissingData
        from flashsale.experiments.clients import run_with_k6
        from flashsale.experiments.plans import NEVER_SELLS_OUT, baseline_cells

        cells = baseline_cells(**BASELINE)
        with pytest.raises(MissingData, match="k6 runs"):
            run_with_k6(Dataset.named("x", tmp_path), cells, paired=NEVER_SELLS_OUT, allow_load=False)


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


class TestRunCells:
    def test_results_come_in_the_plans_order_whatever_order_they_were_stored_in(self, tmp_path):
        from flashsale.experiments.cells import run_cells

        data = Dataset.named("d", tmp_path)
        cells = grid()
        stored = [*reversed(cells[1:]), cells[0]]  # as a rerun of the first cell would leave them
        data.upsert(data.cells_path, pd.DataFrame([{"cell_id": "another plan's", "outcome.created": 1}]))
        for cell in stored:
            data.upsert(data.cells_path, pd.DataFrame([{"cell_id": cell.cell_id, "outcome.created": 1}]))
            data.upsert(data.pgbench_path, pd.DataFrame([{"cell_id": cell.cell_id, "tps": 1.0}]))
        table, pgbench = run_cells(data, cells, allow_load=False)
        assert table["cell_id"].tolist() == [c.cell_id for c in cells]
        assert pgbench["cell_id"].tolist() == [c.cell_id for c in cells]
        assert table.index.tolist() == list(range(len(cells)))


class TestSweepFile:
    def test_default_sweep_names_only_declared_parameters(self):
        sweep = Sweep.load()
        assert [r.notebook for r in sweep.runs][:3] == [
            "1.0-devlog-baseline",
            "2.0-concurrency",
            "3.0-lock-contention",
        ]

    def test_override_reaches_only_notebooks_that_declare_it(self):
        sweep = Sweep.load().override(vus=[1, 2], duration_s=3.0, repeats=None)
        by_name = {r.notebook: r.parameters for r in sweep.runs}
        assert by_name["2.0-concurrency"]["vus"] == [1, 2]
        assert by_name["1.0-devlog-baseline"]["vus"] == 10  # an int there: the seed's 10 VUs, not a level list
        assert all(p["duration_s"] == 3.0 for p in by_name.values())

    def test_unknown_parameter_is_a_clear_error(self, tmp_path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("notebooks:\n  - notebook: 2.0-concurrency\n    parameters: {vuz: [1]}\n")
        with pytest.raises(ValueError, match="has no parameter vuz"):
            Sweep.load(bad)

    def test_unknown_notebook_is_a_clear_error(self, tmp_path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("notebooks:\n  - notebook: 9.9-nope\n")
        with pytest.raises(FileNotFoundError, match=r"known: 1\.0-devlog-baseline"):
            Sweep.load(bad)

    def test_declared_parameters_are_the_typed_defaults(self):
        assert declared_parameters("2.0-concurrency")["vus"] == [1, 2, 4, 8, 16, 32, 64, 128]


class TestAggregate:
    def test_median_range_and_count_per_strategy_and_level_and_any_failed_audit(self):
        from flashsale.reports.figures import aggregate

        cells = pd.DataFrame(
            {
                "strategy": ["a", "a", "a", "a", "b", "b"],
                "vus": [1, 1, 1, 4, 1, 1],
                "rps": [10.0, 20.0, 90.0, 50.0, 7.0, 9.0],
                "audit.ok": [True, True, True, True, True, False],
            }
        )
        table = aggregate(cells, "rps")
        assert table.to_dict("records") == [
            {"strategy": "a", "vus": 1, "median": 20.0, "min": 10.0, "max": 90.0, "n": 3, "oversold": False},
            {"strategy": "a", "vus": 4, "median": 50.0, "min": 50.0, "max": 50.0, "n": 1, "oversold": False},
            {"strategy": "b", "vus": 1, "median": 8.0, "min": 7.0, "max": 9.0, "n": 2, "oversold": True},
        ]

    def test_range_bars_are_drawn_around_the_median(self):
        import matplotlib

        matplotlib.use("Agg")
        from flashsale.reports.figures import _range_bars, aggregate, plt

        cells = pd.DataFrame({"strategy": ["a"] * 3, "vus": [1] * 3, "rps": [10.0, 20.0, 90.0], "audit.ok": True})
        fig, ax = plt.subplots()
        bars = _range_bars(ax, aggregate(cells, "rps"))
        (line,) = bars.lines[:1]
        assert line.get_ydata().tolist() == [20.0]  # the median, not the mean (40)
        (segments,) = bars.lines[2]
        assert segments.get_segments()[0][:, 1].tolist() == [10.0, 90.0]  # the range
        plt.close(fig)


FRONT = dict(
    strategy="pessimistic", vus=8, duration_s=1.0, warmup_s=0.3, users=50, front_users=2, inventory=5, pool_size=4,
    queue_size=20, queue_workers=1, user_rate=5.0, service_workers=2, compared=["pessimistic"], gate_duration_s=0.5,
    reference=True, repeats=2,
)  # fmt: skip


class TestRedisFrontPlan:
    def test_admission_on_several_processes_local_then_shared_each_repeat(self):
        from flashsale.experiments.plans import redis_front_cells

        cells = [c for c in redis_front_cells(**FRONT) if c.load.target == "http"]
        assert [(c.label, c.repeat) for c in cells] == [
            ("local admission, 2 processes", 0), ("Redis admission, 2 processes", 0),
            ("local admission, 2 processes", 1), ("Redis admission, 2 processes", 1),
        ]  # fmt: skip
        local, shared = cells[0].load, cells[1].load
        assert (local.service.admission, shared.service.admission) == ("local", "redis")
        assert local.service.replace(admission="redis") == shared.service  # the one difference
        assert (local.service.workers, local.service.user_rate, local.service.queue_size) == (2, 5.0, 20)
        assert (local.users, local.warmup_s, local.per_user_limit, local.shape) == (2, 0.3, 1, Closed(8, 0.0))

    def test_the_gate_against_each_compared_strategy_on_both_sales_with_its_reference_once(self):
        from flashsale.experiments.plans import redis_front_cells

        cells = [c for c in redis_front_cells(**FRONT) if c.load.target == "db"]
        assert [(c.label, c.repeat, c.pgbench) for c in cells] == [
            ("redis_gate, sale of 5", 0, True), ("redis_gate, never sells out", 0, True),
            ("pessimistic, sale of 5", 0, True), ("pessimistic, never sells out", 0, True),
            ("redis_gate, sale of 5", 1, False), ("redis_gate, never sells out", 1, False),
            ("pessimistic, sale of 5", 1, False), ("pessimistic, never sells out", 1, False),
        ]  # fmt: skip
        assert {(c.load.users, c.load.duration_s) for c in cells} == {(50, 0.5)}
        assert (cells[0].load.inventory, cells[1].load.inventory) == (5, UNLIMITED)
        unreferenced = redis_front_cells(**{**FRONT, "reference": False, "compared": ["redis_gate"]})
        assert not any(c.pgbench for c in unreferenced)
        assert len([c for c in unreferenced if c.load.target == "db"]) == 4  # the gate once, not twice

    def test_a_fault_runs_once_through_the_whole_front_on_a_sale_that_never_sells_out(self):
        from flashsale.experiments.plans import redis_front_cells

        (cell,) = [c for c in redis_front_cells(**FRONT, faults=["redis-kill@0.5s:0.2s"]) if c.load.faults]
        assert (cell.label, cell.repeat, cell.load.faults) == ("redis-kill@0.5s:0.2s", 0, ("redis-kill@0.5s:0.2s",))
        assert (cell.load.target, cell.load.strategy, cell.load.inventory, cell.load.users) == (
            "http", "redis_gate", UNLIMITED, 50
        )  # fmt: skip
        assert (cell.load.service.admission, cell.load.service.workers, cell.load.service.user_rate) == (
            "redis",
            2,
            5.0,
        )
        assert not [c for c in redis_front_cells(**FRONT) if c.load.faults]  # none asked, none run

    def test_the_notebooks_defaults_make_a_plan(self):
        dataset, cells = plan("7.0-redis-front", declared_parameters("7.0-redis-front"))
        assert dataset.name == "redis-front"
        assert len({c.cell_id for c in cells}) == len(cells)
