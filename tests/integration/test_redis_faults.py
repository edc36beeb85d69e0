"""Redis faults on a real embedded Valkey, under the stock gate (`redis_gate`) on the real PostgreSQL: the load
runner killing and restarting Redis mid-run, a Redis that stops answering, and the refusal to fault a Redis the
project does not own. Each test faults a Valkey of its own (`scratch_redis`), never the session's."""

import asyncio
import os
import signal
from pathlib import Path

import psutil
import pytest

from flashsale import config as flashsale_config
from flashsale.domain import PlaceOrder
from flashsale.kv import embedded as kv_embedded
from flashsale.load import Closed, LoadConfig, run_load_async
from flashsale.load.faults import FaultUnsupported, embedded_valkey_dir
from flashsale.repositories import users
from flashsale.services.audit import audit_sale
from flashsale.strategies import RedisDown
from tests.integration.test_cli import flashsale
from tests.waiting import HANG_S

pytestmark = pytest.mark.slow


def gate_load(database_url: str, fault: str, **changes) -> LoadConfig:
    return LoadConfig(
        database_url=database_url, strategy="redis_gate", shape=Closed(vus=4, think_ms=5), duration_s=4.0,
        users=50, inventory=100_000, per_user_limit=100_000, faults=(fault,),
    ).replace(**changes)  # fmt: skip


def check_redis_outage(result, fault_spec: str, at_s: float) -> dict:
    """What every Redis fault must show, in the order things happened (no wall-clock bound): injected at its time,
    Redis down then up, the orders refused `unavailable` in between (nothing else, and no order without an answer),
    orders taken again afterwards through the gate rebuilt from the database, and the audit, gate included."""
    summary, records = result.summary, result.records
    (fault,) = summary["meta"]["faults"]
    assert (fault["fault"], fault["server"], fault["error"]) == (fault_spec, "Redis", None)
    assert at_s <= fault["injected_s"] < fault["down_s"] < fault["up_s"] <= fault["recovered_s"]
    assert fault["lag_s"] >= 0
    assert fault["failures"] > 0
    assert fault["errors"] == {"unavailable": fault["failures"]}
    assert fault["first_failure_s"] >= fault["injected_s"]
    assert records["in_outage"].sum() == fault["requests"]
    after_recovery = records[records["start_s"] > fault["recovered_s"]]
    assert (after_recovery["outcome"] == "created").sum() > 0
    audit = summary["audit"]
    assert result.ok, summary["meta"]["audit_problems"]
    assert audit["acknowledged"] == (records["outcome"] == "created").sum() == audit["orders"]
    assert audit["acknowledged_missing"] == 0
    assert (audit["gate_stock"], audit["gate_disagreements"]) == (audit["remaining"], 0)
    return fault


class TestLoadThroughRedisFaults:
    async def test_a_kill_refuses_while_redis_is_away_and_the_gate_is_rebuilt(self, database_url, scratch_redis):
        directory = await embedded_valkey_dir(scratch_redis)
        before = kv_embedded.running(directory)
        result = await run_load_async(gate_load(database_url, "redis-kill@1s:1s"))
        fault = check_redis_outage(result, "redis-kill@1s:1s", at_s=1.0)
        assert fault["unavailable_s"] >= 1.0  # down at least as long as asked (a lower bound holds under load)
        after = kv_embedded.running(directory)
        assert after.pid != before.pid
        assert after.socket == before.socket
        counters = result.summary["meta"]["strategy_counters"]
        assert counters["rebuilds"] >= 2  # at start, and after Redis came back empty
        assert counters["redis_unavailable"] == result.summary["outcomes"]["unavailable"]

    async def test_a_sale_sold_through_a_kill_never_oversells(self, database_url, scratch_redis):
        """A small stock, one unit a user, and Redis killed and restarted at once early in the run: whatever the
        gate held before is lost, the rebuilt gate sells only what the database still has, and agrees with it."""
        result = await run_load_async(
            gate_load(database_url, "redis-kill@500ms", users=300, inventory=100, per_user_limit=1, duration_s=3.0)
        )
        (fault,) = result.summary["meta"]["faults"]
        assert (fault["error"], fault["server"]) == (None, "Redis")
        assert fault["recovered_s"] is not None
        outcomes = result.summary["outcomes"]
        assert set(outcomes) <= {"created", "sold_out", "per_user_limit_exceeded", "unavailable"}
        audit = result.summary["audit"]
        assert result.ok, result.summary["meta"]["audit_problems"]
        assert outcomes.get("created", 0) == audit["orders"] == 100 - audit["remaining"] <= 100
        assert (audit["gate_stock"], audit["gate_disagreements"]) == (audit["remaining"], 0)


class TestRedisAway:
    async def test_a_frozen_redis_is_refused_while_still_frozen(
        self, scratch_redis, make_strategy, conn, pool, make_scenario
    ):
        """A Redis that accepts nothing and answers nothing (SIGSTOP): the order is refused `unavailable` after the
        strategy's wait, while Redis is still stopped, instead of waiting for it forever; once it runs again, the
        next order goes through."""
        made = await make_scenario(users=2, inventory=5)
        first, second = await users.list_ids(conn, limit=2)
        gate = make_strategy("redis_gate", redis_url=scratch_redis, wait_s=2.0)
        await gate.start(pool)
        info = kv_embedded.running(await embedded_valkey_dir(scratch_redis))
        os.kill(info.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(HANG_S):
                with pytest.raises(RedisDown, match="did not answer"):
                    await gate.place_order(pool, PlaceOrder(first, made.flash_sale_id))
            assert psutil.Process(info.pid).status() == psutil.STATUS_STOPPED
        finally:
            os.kill(info.pid, signal.SIGCONT)
        await gate.place_order(pool, PlaceOrder(second, made.flash_sale_id))
        assert gate.counters["redis_unavailable"] == 1
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 4)
        # The refused order's script may still have run once Redis woke up (its reply lost): a unit the gate holds
        # back until its next rebuild, never one more than the database has.
        view = await gate.gate.view(made.flash_sale_id)
        assert view.stock <= audit.remaining


class TestOnlyOurOwnValkey:
    async def test_the_project_s_valkey_is_found_by_its_directory(self, scratch_redis):
        directory = await embedded_valkey_dir(scratch_redis)
        assert kv_embedded.running(directory).url() == scratch_redis

    async def test_a_valkey_outside_the_project_is_refused(self, scratch_redis, monkeypatch, tmp_path):
        monkeypatch.setenv(flashsale_config.HOME_ENV, str(tmp_path))  # the scratch server is no longer "ours"
        with pytest.raises(FaultUnsupported, match="need the project's embedded Valkey"):
            await embedded_valkey_dir(scratch_redis)

    async def test_an_unreachable_redis_is_refused(self, tmp_path):
        with pytest.raises(FaultUnsupported, match="cannot ask"):
            await embedded_valkey_dir(f"unix://{tmp_path / 'none.sock'}")

    def test_the_command_says_so_in_one_line(self, database_url, tmp_path):
        elsewhere = {flashsale_config.REDIS_URL_ENV: f"unix://{Path(tmp_path) / 'none.sock'}"}
        proc = flashsale(
            "load", "--strategy", "redis_gate", "--duration", "2s", "--fault", "redis-kill@1s:500ms", "--quiet",
            env=elsewhere, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.startswith("flashsale: error: cannot ask unix://")
        assert len(proc.stderr.strip().splitlines()) == 1
