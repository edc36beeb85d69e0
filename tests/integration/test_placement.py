"""CPU placement on real processes: the embedded PostgreSQL (its postmaster, its backends, a restart), a load run
that records where each part ran, pgbench on the client's CPUs, the service and its workers, and the refusal to
place a server the project did not start. Everything that is stopped or placed is a server of its own
(`scratch_server`); what a test places, it gives back."""

from __future__ import annotations

import os
import threading

import psutil
import psycopg
import pytest

from flashsale import config as flashsale_config
from flashsale import placement
from flashsale.db import embedded
from flashsale.load import Closed, LoadConfig, run_load_async
from flashsale.load.faults import FaultUnsupported
from flashsale.load.pgbench import run_pgbench
from flashsale.load.placing import database_placed
from flashsale.serving.server_process import ServerProcess
from flashsale.strategies import get_strategy
from tests.integration.test_cli import flashsale
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not placement.supported() or len(placement.usable_cpus()) < 2, reason="needs CPU affinity and two usable CPUs"
)

FIRST, LAST = str(min(placement.usable_cpus())), str(max(placement.usable_cpus()))
EVERYWHERE = placement.format_cpus(placement.usable_cpus())


def backend_affinity(url: str) -> str | None:
    """The CPU set of a backend forked for a new connection, while it lives."""
    with psycopg.connect(url, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return placement.affinity_of(pid)


def server_affinities(pgdata) -> set[str | None]:
    """The CPU sets of the postmaster and of every process it has now."""
    root = psutil.Process(embedded.running(pgdata).pid)
    sets = {placement.affinity_of(p.pid) for p in [root, *root.children(recursive=True)]}
    return sets - {None}  # a backend that ended meanwhile


@pytest.fixture
def server(scratch_server):
    """The scratch server, free again (and its placement forgotten) after the test."""
    yield scratch_server
    embedded.place(None, scratch_server.pgdata)


class TestTheEmbeddedServer:
    """`embedded.place` puts every process of the server on the set, now and after any restart."""

    def test_the_postmaster_its_processes_and_new_backends(self, server):
        with psycopg.connect(server.url, autocommit=True) as held:  # a backend that exists before the placement
            held_pid = held.execute("SELECT pg_backend_pid()").fetchone()[0]
            embedded.place(FIRST, server.pgdata)
            assert server_affinities(server.pgdata) == {FIRST}
            assert placement.affinity_of(held_pid) == FIRST
        assert backend_affinity(server.url) == FIRST  # forked after: inherited from the postmaster

    def test_a_restart_places_the_new_postmaster_the_same_way(self, server):
        embedded.place(LAST, server.pgdata)
        before = embedded.running(server.pgdata)
        embedded.stop(server.pgdata)  # what a db-restart fault does
        after = embedded.resume(server.pgdata, before.socket_dir)
        assert after.pid != before.pid
        assert server_affinities(server.pgdata) == {LAST}
        assert backend_affinity(server.url) == LAST

    def test_placed_gives_the_server_back_as_it_was(self, server):
        with embedded.placed(FIRST, server.pgdata):
            assert backend_affinity(server.url) == FIRST
        assert embedded.placement_of(server.pgdata) is None
        assert server_affinities(server.pgdata) == {EVERYWHERE}
        assert backend_affinity(server.url) == EVERYWHERE


class TestALoadRun:
    """A run places the database and its client for its length and records where each actually ran."""

    async def test_db_target_records_what_each_part_ran_on(self, server):
        config = LoadConfig(
            database_url=server.url,
            shape=Closed(vus=2, think_ms=0),
            duration_s=0.5,
            users=20,
            db_cpus=FIRST,
            client_cpus=LAST,
        )
        before = os.sched_getaffinity(0)
        result = await run_load_async(config)
        placed = result.summary["meta"]["placement"]
        assert placed["configured"] == {"db": FIRST, "service": None, "client": LAST}
        assert (placed["ran_on"]["db"], placed["ran_on"]["client"]) == (FIRST, LAST)
        assert result.ok
        assert os.sched_getaffinity(0) == before  # the client got its own set back
        assert server_affinities(server.pgdata) == {EVERYWHERE}  # given back after the run

    async def test_the_database_stays_placed_through_a_restart_fault(self, server):
        config = LoadConfig(
            database_url=server.url, shape=Closed(vus=2, think_ms=1), duration_s=2, users=20, db_cpus=FIRST,
            faults=("db-restart@0.5s",),
        )  # fmt: skip
        seen: list[set[str | None]] = []
        before = embedded.running(server.pgdata).pid

        def restarted() -> bool:
            try:
                info = embedded.running(server.pgdata)
                if info is None or info.pid == before:
                    return False
                seen.append(server_affinities(server.pgdata))
            except (AssertionError, OSError, psutil.Error):  # postmaster.pid half written, a process gone
                return False
            return True

        watcher = threading.Thread(target=wait_for, args=(restarted, "the restarted server"))
        watcher.start()
        result = await run_load_async(config)
        watcher.join()
        assert result.summary["meta"]["faults"][0]["up_s"] is not None
        assert seen
        assert seen[0] == {FIRST}
        assert result.ok

    async def test_a_started_service_runs_where_asked(self, server):
        config = LoadConfig(
            target="http", database_url=server.url, shape=Closed(vus=2, think_ms=0), duration_s=0.5, users=20,
            db_cpus=FIRST, client_cpus=LAST,
        )  # fmt: skip
        placed = (await run_load_async(config)).summary["meta"]["placement"]["ran_on"]
        assert (placed["db"], placed["service"], placed["client"]) == (FIRST, FIRST, LAST)


class TestPgbench:
    """pgbench runs on the client's CPUs, with one thread per CPU by default."""

    async def test_pgbench_runs_on_the_cpus_it_is_given(self, server, make_strategy):
        from flashsale.db import connection
        from flashsale.services import scenario

        async with await connection.connect_async(server.url) as conn:
            made = await scenario.reset(conn, users=10, inventory=100_000, per_user_limit=100_000)
        seen: list[str | None] = []

        def pgbench_seen() -> bool:
            found = [p for p in psutil.Process().children() if p.name() == "pgbench"]  # ours, not another job's
            seen.extend(placement.affinity_of(p.pid) for p in found)
            return bool(found)

        watcher = threading.Thread(target=wait_for, args=(pgbench_seen, "pgbench"))
        watcher.start()
        result = run_pgbench(
            server.url, script=get_strategy("atomic").pgbench_script(), flash_sale_id=made.flash_sale_id,
            users=made.users, clients=2, duration_s=2, cpus=LAST,
        )  # fmt: skip
        watcher.join()
        assert seen
        assert set(seen) == {LAST}
        assert (result.cpus, result.threads) == (LAST, 1)
        assert os.sched_getaffinity(0) != {int(LAST)}  # the caller's thread got its own set back


class TestTheService:
    """`serve --service-cpus` puts the server and each of its worker processes on the set."""

    def test_every_process_of_the_service(self, server, tmp_path):
        with ServerProcess(
            workers=2, pool_size=1, log_path=tmp_path / "serve.log", extra_args=["--service-cpus", LAST],
            env={flashsale_config.DATABASE_URL_ENV: server.url},
        ) as service:  # fmt: skip
            pids = [service.pid, *service.worker_pids()]
            assert len(pids) == 3
            assert {placement.affinity_of(pid) for pid in pids} == {LAST}

    def test_without_its_own_cpus_the_service_goes_with_the_database(self, server, tmp_path):
        with ServerProcess(
            pool_size=1, log_path=tmp_path / "serve.log", extra_args=["--db-cpus", FIRST],
            env={flashsale_config.DATABASE_URL_ENV: server.url},
        ) as service:  # fmt: skip
            assert placement.affinity_of(service.pid) == FIRST
            assert server_affinities(server.pgdata) == {FIRST}
        assert server_affinities(server.pgdata) == {EVERYWHERE}  # given back when the service ended


class TestOnlyOurOwnServer:
    """A server the project did not start cannot be placed, and the command says so."""

    def test_placing_another_server_is_refused(self, database_url, monkeypatch, tmp_path):
        monkeypatch.setenv(flashsale_config.HOME_ENV, str(tmp_path))  # the test server is no longer "ours"
        with (
            pytest.raises(
                FaultUnsupported,
                match=r"use --placement free\) need the project's embedded PostgreSQL",
            ),
            database_placed(database_url, FIRST),
        ):
            pass

    def test_the_command_exits_2_with_one_line(self, database_url, tmp_path):
        proc = flashsale(
            "load", "--duration", "1s", "--db-cpus", FIRST, "--quiet",
            env={flashsale_config.HOME_ENV: str(tmp_path)}, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1
        assert (
            "CPU placements (--db-cpus, or --placement split: use --placement free) need the project's embedded"
            in proc.stderr
        )

    def test_a_list_that_is_not_one_exits_2(self, database_url):
        proc = flashsale("load", "--duration", "1s", "--client-cpus", "1-0", "--quiet", check=False)
        assert (proc.returncode, proc.stderr.count("\n")) == (2, 1)
        assert "not a CPU range: '1-0'" in proc.stderr


class TestAPlacementOutlivesNoOwner:
    """A placement is kept with the pid of the process that made it; once that process is gone, it is forgotten."""

    def test_a_dead_owners_placement_is_forgotten_at_the_next_start(self, server):
        child = psutil.Popen(["sleep", "60"])
        try:
            embedded.place(FIRST, server.pgdata, owner=child.pid)
            assert embedded.placement_of(server.pgdata) == FIRST
        finally:
            child.kill()
            child.wait()
        assert embedded.placement_of(server.pgdata) is None
        before = embedded.running(server.pgdata)
        embedded.stop(server.pgdata)
        embedded.resume(server.pgdata, before.socket_dir)
        assert server_affinities(server.pgdata) == {EVERYWHERE}
