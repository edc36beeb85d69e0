"""What a report says of where its figures were measured: the placement each cell asks for, the context table
(commit, CPUs each part ran on, load before the runs, package versions), and parameters a sweep file gives to
every notebook."""

import pandas as pd
import pytest

from flashsale import placement
from flashsale.experiments import notebook
from flashsale.experiments.cells import Cell
from flashsale.experiments.context import MEASURED_PACKAGES, machine
from flashsale.experiments.plans import placed
from flashsale.experiments.sweep import Sweep
from flashsale.load import Closed, LoadConfig

needs_two = pytest.mark.skipif(
    not placement.supported() or len(placement.usable_cpus()) < 2, reason="needs CPU affinity and two usable CPUs"
)


def cells() -> list[Cell]:
    return [
        Cell("db", LoadConfig(target="db", shape=Closed(vus=8))),
        Cell("http", LoadConfig(target="http", shape=Closed(vus=8))),
        Cell("running service", LoadConfig(target="http", base_url="http://127.0.0.1:1")),
    ]


@needs_two
class TestCellsArePlaced:
    """The notebooks' placement parameters become CPU lists in every cell's load configuration."""

    def test_split_places_the_database_and_the_client(self):
        db, client = placement.split_cpus(placement.usable_cpus())
        planned = placed(cells(), {"placement": "split"})
        assert [(c.load.db_cpus, c.load.service_cpus, c.load.client_cpus) for c in planned] == [
            (db, None, client),
            (db, None, client),  # the service goes with the database when the run starts it
            (db, None, client),
        ]

    def test_a_given_part_replaces_the_named_one_and_the_service_goes_only_where_one_is_started(self):
        planned = placed(cells(), {"placement": "split", "client_cpus": "0", "service_cpus": "1"})
        assert [c.load.client_cpus for c in planned] == ["0", "0", "0"]
        assert [c.load.service_cpus for c in planned] == [None, "1", None]

    def test_free_changes_nothing(self):
        assert placed(cells(), {"placement": "free", "db_cpus": ""}) == cells()
        assert placed(cells(), {}) == cells()


class TestTheContextTable:
    """One line per context, the CPUs each part ran on, and the range of the load before its runs."""

    def test_runs_of_one_context_are_one_line_with_their_load_range(self):
        rows = pd.DataFrame(
            [
                {"time": "t1", "git_commit": "abc", "meta.placement.ran_on.db": "0",
                 "meta.placement.ran_on.client": "1", "meta.load_average_before.1m": 0.25},
                {"time": "t2", "git_commit": "abc", "meta.placement.ran_on.db": "0",
                 "meta.placement.ran_on.client": "1", "meta.load_average_before.1m": 0.75},
                {"time": "t3", "git_commit": "def", "meta.placement.ran_on.db": None,
                 "meta.placement.ran_on.client": None, "meta.load_average_before.1m": None},
            ]
        )  # fmt: skip
        table = notebook.context_frame(rows)
        assert table.to_dict("records") == [
            {"measured at (UTC)": "t1", "git commit": "abc", "database CPUs": "0", "client CPUs": "1", "runs": 2,
             "load average before (1 min)": "0.25–0.75"},
            {"measured at (UTC)": "t3", "git commit": "def", "database CPUs": "–", "client CPUs": "–", "runs": 1,
             "load average before (1 min)": "–"},
        ]  # fmt: skip

    def test_a_run_that_did_not_start_its_service_is_not_another_context(self):
        rows = pd.DataFrame(
            [
                {"git_commit": "abc", "meta.placement.ran_on.db": "0", "meta.placement.ran_on.service": "0"},
                {"git_commit": "abc", "meta.placement.ran_on.db": "0", "meta.placement.ran_on.service": None},
                {"git_commit": "abc", "meta.placement.ran_on.db": "0-1", "meta.placement.ran_on.service": "1"},
            ]
        )
        table = notebook.context_frame(rows)
        assert table[["git commit", "database CPUs", "service CPUs", "runs"]].to_dict("records") == [
            {"git commit": "abc", "database CPUs": "0 / 0-1", "service CPUs": "0 / 1", "runs": 3}
        ]

    def test_the_shown_table_has_a_row_a_property(self):
        rows = pd.DataFrame([{"git_commit": "abc", "meta.placement.ran_on.db": "0"}])
        shown = notebook.context(rows).data
        assert shown.columns.tolist() == ["", "measured"]
        assert dict(zip(shown[""], shown["measured"], strict=True))["database CPUs"] == "0"

    def test_the_versions_of_the_packages_that_matter(self):
        packages = machine()["packages"]
        assert packages.startswith("psycopg 3.")
        assert " · libpq " in packages
        assert {name.split(" ")[0] for name in packages.split(" · ")} <= {*MEASURED_PACKAGES, "libpq"}


class TestSweepFileParameters:
    """`parameters:` at the top of a sweep file go to every notebook that declares them; a notebook's own win."""

    def test_common_parameters_and_a_notebooks_own(self, tmp_path):
        path = tmp_path / "s.yaml"
        path.write_text(
            "parameters: {users: 7}\n"
            "notebooks:\n"
            "  - notebook: 1.0-devlog-baseline\n"
            "  - notebook: 3.0-lock-contention\n"
            "    parameters: {users: 9}\n"
        )
        runs = Sweep.load(path).runs
        assert [run.parameters for run in runs] == [{"users": 7}, {"users": 9}]

    def test_one_no_notebook_has_is_refused(self, tmp_path):
        path = tmp_path / "s.yaml"
        path.write_text("parameters: {placment: split}\nnotebooks:\n  - notebook: 1.0-devlog-baseline\n")
        with pytest.raises(ValueError, match="no notebook has the parameter placment of `parameters:`"):
            Sweep.load(path)

    def test_they_must_be_a_mapping(self, tmp_path):
        path = tmp_path / "s.yaml"
        path.write_text("parameters: [1]\nnotebooks: []\n")
        with pytest.raises(ValueError, match="`parameters:` must be a mapping"):
            Sweep.load(path)
