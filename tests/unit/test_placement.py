"""CPU lists as taskset writes them, the named placements, and pinning this process or one thread for a block."""

import os
import threading

import pytest

from flashsale import placement
from flashsale.load.config import LoadConfig, default_workers
from flashsale.load.shapes import Closed
from flashsale.placement import Placement, PlacementError

needs_two = pytest.mark.skipif(
    not placement.supported() or not {0, 1} <= placement.usable_cpus(), reason="needs CPU affinity and CPUs 0 and 1"
)
pytestmark = needs_two  # the lists below name CPUs 0 and 1


class TestCpuLists:
    """A CPU list reads and writes as `taskset -c` does."""

    @pytest.mark.parametrize(
        ("cpus", "text"), [({0}, "0"), ({0, 1, 2, 5}, "0-2,5"), ({3, 1}, "1,3"), ({4, 5, 6, 7, 9, 10}, "4-7,9-10")]
    )
    def test_the_shortest_form(self, cpus, text):
        assert placement.format_cpus(cpus) == text
        assert placement._parse(text) == frozenset(cpus)

    @pytest.mark.parametrize("text", ["", "a", "1-", "3-1", "0,,1", "-1"])
    def test_a_malformed_list_says_how_to_write_one(self, text):
        with pytest.raises(PlacementError, match="not a CPU"):
            placement._parse(text)

    def test_a_cpu_this_machine_does_not_have_is_refused(self):
        beyond = max(placement.usable_cpus()) + 1
        with pytest.raises(PlacementError, match=f"CPU {beyond} of '{beyond}' is not usable here"):
            placement.parse_cpus(str(beyond))

    def test_free_and_empty_mean_not_placed(self):
        assert placement.normalize(None) is None
        assert placement.normalize("free") is None
        assert placement.normalize(" ") is None


class TestPlacement:
    """A placement holds canonical lists; the service goes with the database unless given."""

    def test_the_service_goes_with_the_database(self):
        assert Placement(db="0").service_cpus == "0"
        assert Placement(db="0", service="1").service_cpus == "1"
        assert Placement(client="0").service_cpus is None

    @pytest.mark.parametrize(
        ("cpus", "db", "client"),
        [(range(2), "0", "1"), (range(4), "0-2", "3"), (range(16), "0-11", "12-15"), ([2, 3, 6, 7], "2-3,6", "7")],
    )
    def test_split_gives_the_client_the_last_quarter(self, cpus, db, client):
        assert placement.split_cpus(cpus) == (db, client)

    def test_one_cpu_cannot_be_split(self):
        assert placement.split_cpus([3]) is None

    @needs_two
    def test_split_here_divides_this_machines_cpus(self):
        db, client = placement.split_cpus(placement.usable_cpus())
        assert Placement.named("split") == Placement(db=db, client=client)
        assert Placement.named("free") == Placement()

    def test_an_unknown_name_is_refused(self):
        with pytest.raises(PlacementError, match="unknown placement 'apart'; choose one of: free, split"):
            Placement.named("apart")

    @needs_two
    def test_lists_are_kept_canonical(self):
        assert Placement(db="1,0", client=" 1 ").db == "0-1"


class TestLoadConfig:
    """A load run's placement is part of its configuration, validated with it."""

    @needs_two
    def test_the_fields_are_canonical_and_make_the_placement(self):
        config = LoadConfig(target="http", db_cpus="0", client_cpus="1,1")
        assert config.placement == Placement(db="0", client="1")
        assert config.placement.service_cpus == "0"

    def test_service_cpus_need_a_started_service(self):
        with pytest.raises(ValueError, match="service CPUs are for the service this run starts"):
            LoadConfig(target="db", service_cpus="0")

    def test_a_bad_list_is_refused(self):
        with pytest.raises(PlacementError, match="not a CPU list"):
            LoadConfig(db_cpus="zero")

    @needs_two
    def test_a_client_on_its_own_cpus_gets_a_load_process_per_cpu(self):
        config = LoadConfig(shape=Closed(vus=64, think_ms=0), client_cpus="1")
        assert default_workers(config, cores=64) == 1  # one client CPU: one process, whatever the machine
        unplaced = LoadConfig(shape=Closed(vus=64, think_ms=0))
        assert default_workers(unplaced, cores=64) == 4  # unplaced: the quarter rule


@needs_two
class TestPinning:
    """Pinning puts every thread where asked, and gives each its own set back after the block."""

    def test_this_process_for_a_block(self):
        before = os.sched_getaffinity(0)
        seen: list[set[int]] = []
        with placement.pinned_here("1"):
            thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
            thread.start()
            thread.join()
            assert os.sched_getaffinity(0) == {1}
        assert seen == [{1}]  # a thread started inside inherits it
        assert os.sched_getaffinity(0) == before

    def test_one_thread_leaves_the_others_alone(self):
        other_ready, done = threading.Event(), threading.Event()
        seen: list[set[int]] = []

        def other() -> None:
            other_ready.set()
            done.wait()
            seen.append(os.sched_getaffinity(0))

        thread = threading.Thread(target=other)
        thread.start()
        other_ready.wait()
        with placement.pinned_thread("0"):
            assert os.sched_getaffinity(0) == {0}
            done.set()
            thread.join()
        assert seen == [placement.usable_cpus() & os.sched_getaffinity(0)]
        assert os.sched_getaffinity(0) != {0}


@needs_two
class TestCells:
    """A cell measured under another placement is another cell: it is measured, not read back."""

    def test_the_placement_is_part_of_a_cells_key(self):
        from flashsale.experiments.cells import Cell

        free = Cell("pessimistic, 8 VUs", LoadConfig(shape=Closed(vus=8)))
        split = Cell("pessimistic, 8 VUs", LoadConfig(shape=Closed(vus=8), db_cpus="0", client_cpus="1"))
        assert free.key != split.key
        assert split.params["client_cpus"] == "1"
