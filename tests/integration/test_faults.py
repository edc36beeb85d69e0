"""Faults on a real embedded server: the db target through a restart and a stop, the audit of acknowledged orders,
and the refusal to fault a server the project does not own. The faults are injected into a server of their own
(`scratch_server`), never into the one the other tests use."""

import uuid

import pytest

from flashsale import config as flashsale_config
from flashsale.db import embedded
from flashsale.domain import PlaceOrder
from flashsale.load import Closed, LoadConfig, run_load_async
from flashsale.load.faults import FaultUnsupported, embedded_pgdata
from flashsale.services.audit import audit_sale
from flashsale.strategies import get_strategy
from flashsale.testing import TEST_DATABASE_URL_ENV
from tests.integration.test_cli import flashsale

pytestmark = pytest.mark.slow


@pytest.fixture
def pgdata(database_url):
    """The test server's data directory (only looked up, never stopped); skipped when the tests run on a server
    given by URL."""
    try:
        return embedded_pgdata(database_url)
    except FaultUnsupported:
        pytest.skip(f"faults need the embedded test server, not {TEST_DATABASE_URL_ENV}")


class TestAcknowledgedOrdersAudit:
    async def test_every_acknowledged_order_must_be_in_the_database(self, conn, make_scenario):
        made = await make_scenario(users=3, inventory=5, per_user_limit=2)
        strategy = get_strategy("pessimistic")
        users = [row[0] for row in await (await conn.execute("SELECT id FROM users ORDER BY number")).fetchall()]
        placed = [await strategy.create_order(conn, PlaceOrder(u, made.flash_sale_id)) for u in users[:2]]

        complete = await audit_sale(conn, made.flash_sale_id, acknowledged=[placed[0].id, placed[1].id, placed[0].id])
        assert complete.ok
        assert (complete.acknowledged, complete.acknowledged_missing) == (2, 0)
        assert (complete.unacknowledged, complete.duplicate_acknowledgements) == (0, 1)

        lost = uuid.uuid4()
        as_bytes = b"".join(i.bytes for i in (placed[0].id, lost))
        audit = await audit_sale(conn, made.flash_sale_id, acknowledged=as_bytes)
        assert not audit.ok
        assert (audit.acknowledged, audit.acknowledged_missing, audit.unacknowledged) == (2, 1, 1)
        assert audit.problems() == ["1 of 2 acknowledged orders are not in the database"]
        assert audit.as_json()["acknowledged_missing"] == 1

    async def test_without_acknowledgements_it_checks_only_the_inventory(self, conn, make_scenario):
        made = await make_scenario(users=1, inventory=1)
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok
        assert audit.acknowledged is None
        assert audit.unacknowledged is None


def check_outage(result, fault_spec: str, at_s: float) -> dict:
    """What every fault must show, in the order things happened (no wall-clock bound: a loaded machine only
    stretches the intervals): injected at its time, the server down then up, the clients failing in between and
    ordering again afterwards on the same pool, nothing acknowledged lost, nothing oversold."""
    summary, records = result.summary, result.records
    (fault,) = summary["meta"]["faults"]
    assert fault["fault"] == fault_spec
    assert fault["error"] is None
    assert at_s <= fault["injected_s"] < fault["down_s"] < fault["up_s"] <= fault["recovered_s"]
    assert fault["recovery_s"] == pytest.approx(fault["recovered_s"] - fault["injected_s"])
    assert fault["lag_s"] >= 0
    # The clients failed while it was down (in-flight orders by class, the rest refused at once)...
    assert fault["failures"] > 0
    assert set(fault["errors"]) <= {"unavailable", "AdminShutdown", "OperationalError", "PoolTimeout"}
    assert fault["first_failure_s"] >= fault["injected_s"]
    # ...and ordered again afterwards, on the same pool.
    after_recovery = records[records["start_s"] > fault["recovered_s"]]
    assert (after_recovery["outcome"] == "created").sum() > 0
    assert records["in_outage"].sum() == fault["requests"]
    # Nothing acknowledged was lost, nothing oversold.
    audit = summary["audit"]
    assert result.ok, summary["meta"]["audit_problems"]
    assert audit["acknowledged"] == (records["outcome"] == "created").sum()
    assert audit["acknowledged_missing"] == 0
    assert audit["orders"] == audit["acknowledged"] + audit["unacknowledged"]
    return fault


def db_load(url: str, fault: str) -> LoadConfig:
    return LoadConfig(
        database_url=url, shape=Closed(vus=4, think_ms=5), duration_s=5.0, users=50, inventory=100_000,
        per_user_limit=100_000, faults=(fault,),
    )  # fmt: skip


class TestDbTargetThroughFaults:
    async def test_a_restart_completes_reports_the_outage_and_loses_nothing(self, scratch_server):
        before = embedded.running(scratch_server.pgdata)
        result = await run_load_async(db_load(scratch_server.url, "db-restart@1s"))
        after = embedded.running(scratch_server.pgdata)
        assert after is not None
        assert after.pid != before.pid
        assert (after.socket_dir, after.port) == (before.socket_dir, before.port)
        check_outage(result, "db-restart@1s", at_s=1.0)

    async def test_a_stop_keeps_the_server_down_for_its_duration(self, scratch_server):
        before = embedded.running(scratch_server.pgdata)
        result = await run_load_async(db_load(scratch_server.url, "db-stop@1s:1s"))
        fault = check_outage(result, "db-stop@1s:1s", at_s=1.0)
        assert fault["unavailable_s"] >= 1.0  # down at least as long as asked (a lower bound holds under load)
        assert fault["recovered_s"] >= fault["down_s"] + 1.0
        after = embedded.running(scratch_server.pgdata)
        assert after.pid != before.pid
        assert (after.socket_dir, after.port) == (before.socket_dir, before.port)


class TestOnlyOurOwnServer:
    def test_a_server_outside_the_project_is_refused(self, database_url, pgdata, monkeypatch, tmp_path):
        monkeypatch.setenv(flashsale_config.HOME_ENV, str(tmp_path))  # the test server is no longer "ours"
        with pytest.raises(FaultUnsupported, match="need the project's embedded PostgreSQL"):
            embedded_pgdata(database_url)

    def test_an_unreachable_server_is_refused(self, tmp_path):
        with pytest.raises(FaultUnsupported, match="cannot ask"):
            embedded_pgdata(f"postgresql://postgres@/flashsale?host={tmp_path}&port=1")

    def test_the_command_says_so_in_one_line(self, database_url, pgdata, tmp_path):
        proc = flashsale(
            "load", "--duration", "2s", "--fault", "db-restart@1s", "--quiet",
            env={flashsale_config.HOME_ENV: str(tmp_path)}, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.startswith("flashsale: error: database faults need the project's embedded PostgreSQL")
        assert len(proc.stderr.strip().splitlines()) == 1

    @pytest.mark.parametrize("spec", ["db-stop@1s", "db-restart@9s", "cpu-spike@1s"])
    def test_bad_specs_are_usage_errors(self, database_url, spec):
        proc = flashsale("load", "--duration", "2s", "--fault", spec, "--quiet", check=False)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1
