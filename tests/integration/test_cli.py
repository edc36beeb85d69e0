"""The `flashsale` command, run as a user runs it: a real process against the test database."""

import json
import os
import subprocess
import sys
import uuid

import pytest


def flashsale(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def fresh_sale(database_url):
    return json.loads(
        flashsale("db", "reset", "--users", "5", "--inventory", "2", "--per-user-limit", "1", "--json").stdout
    )


class TestDbCommands:
    def test_url_is_the_configured_database(self, database_url):
        assert flashsale("db", "url").stdout.strip() == database_url

    def test_reset_prints_the_scenario(self, fresh_sale):
        assert fresh_sale["users"] == 5
        assert fresh_sale["inventory"] == 2
        assert fresh_sale["per_user_limit"] == 1
        uuid.UUID(fresh_sale["flash_sale_id"])

    def test_status_reports_migrations_and_scenario(self, fresh_sale):
        status = json.loads(flashsale("db", "status", "--json").stdout)
        assert status["running"] is True
        assert status["server_version"].startswith("18")
        assert status["pending_migrations"] == []
        assert (status["users"], status["flash_sales"]) == (5, 1)

    def test_reset_of_10000_users(self, database_url):
        # How fast is a benchmark's question, not a test's: this one checks that the rows are all there.
        out = json.loads(flashsale("db", "reset", "--users", "10000", "--json").stdout)
        assert out["users"] == 10000
        status = json.loads(flashsale("db", "status", "--json").stdout)
        assert (status["users"], status["flash_sales"]) == (10000, 1)

    def test_every_command_has_help(self):
        for args in (
            ["--help"],
            ["db", "--help"],
            ["db", "reset", "--help"],
            ["redis", "--help"],
            ["order", "--help"],
            ["demo", "--help"],
            ["strategies", "--help"],
        ):
            assert "usage:" in flashsale(*args).stdout

    def test_reset_creates_the_shards_asked_for(self, database_url):
        out = json.loads(flashsale("db", "reset", "--shards", "3", "--json").stdout)
        assert out["shards"] == 3
        import psycopg

        with psycopg.connect(database_url) as c:
            assert c.execute("SELECT count(*) FROM flash_sale_shards").fetchone()[0] == 3


class TestStrategiesCommand:
    def test_json_lists_every_strategy_with_its_paragraph(self):
        from flashsale import strategies

        listed = json.loads(flashsale("strategies", "--json").stdout)
        assert [entry["name"] for entry in listed] == strategies.names()
        assert all(set(entry) == {"name", "safe", "summary"} for entry in listed)
        assert [entry["name"] for entry in listed if not entry["safe"]] == ["unsafe"]

    def test_text_labels_the_unsafe_one(self):
        text = flashsale("strategies").stdout
        blocks = {block.split("\n", 1)[0]: block for block in text.strip().split("\n\n")}
        assert "UNSAFE" in next(head for head in blocks if head.startswith("unsafe"))
        assert not any("UNSAFE" in head for head in blocks if not head.startswith("unsafe"))
        assert "FOR UPDATE SKIP LOCKED" in blocks["sharded"]

    @pytest.mark.parametrize("name", ["atomic", "batched", "sharded"])
    def test_order_through_a_strategy(self, name, database_url):
        import psycopg

        sale = json.loads(flashsale("db", "reset", "--users", "2", "--inventory", "3", "--json").stdout)
        with psycopg.connect(database_url) as c:
            user = str(c.execute("SELECT id FROM users ORDER BY number LIMIT 1").fetchone()[0])
        placed = json.loads(
            flashsale("order", "--user", user, "--sale", sale["flash_sale_id"], "--strategy", name, "--json").stdout
        )
        assert (placed["strategy"], placed["order"]["status"]) == (name, "CONFIRMED")

    @pytest.mark.parametrize("name", ["batched", "sharded", "serializable"])
    def test_bench_pgbench_follows_the_strategys_plan(self, name, database_url):
        """batched needs its batch size and one client, sharded its units in the shards, serializable --max-tries."""
        proc = flashsale(
            "bench",
            "pgbench",
            "--strategy",
            name,
            "--vus",
            "4",
            "--duration",
            "1s",
            "--inventory",
            "100000",
            "--per-user-limit",
            "100000",
            "--json",
        )
        result = json.loads(proc.stdout)
        assert result["audit"]["ok"] is True
        expected = result["transactions"] * result["orders_per_transaction"]
        if name == "sharded":  # a recheck after queueing on a shard may sell nothing, rarely (see its script)
            assert expected >= result["audit"]["orders"] >= 0.98 * expected > 0
        else:
            assert result["audit"]["orders"] == expected > 0
        if name == "batched":
            assert (result["clients"], result["orders_per_transaction"]) == (1, 4)


class TestOrderCommand:
    def test_places_then_refuses_by_the_limit(self, fresh_sale, database_url):
        import psycopg

        with psycopg.connect(database_url) as c:
            user = str(c.execute("SELECT id FROM users ORDER BY number LIMIT 1").fetchone()[0])
        sale = fresh_sale["flash_sale_id"]
        placed = json.loads(flashsale("order", "--user", user, "--sale", sale, "--json").stdout)
        assert placed["order"]["status"] == "CONFIRMED"
        again = flashsale("order", "--user", user, "--sale", sale, "--json", check=False)
        assert again.returncode == 1
        assert json.loads(again.stdout)["error"] == "per_user_limit_exceeded"
        assert again.stderr.count("\n") == 1
        assert "Traceback" not in again.stderr


class TestBadInput:
    """Bad input gives one line on stderr and a non-zero exit status, never a traceback."""

    @pytest.mark.parametrize(
        "args",
        [
            ["db", "reset", "--users", "0"],
            ["db", "reset", "--inventory", "-1"],
            ["db", "reset", "--per-user-limit", "0"],
            ["db", "reset", "--sale-window", "soon"],
            ["db", "reset", "--shards", "0"],
            ["order", "--user", "not-a-uuid", "--sale", str(uuid.uuid4())],
            ["order", "--user", str(uuid.uuid4()), "--sale", str(uuid.uuid4()), "--quantity", "0"],
            ["order", "--user", str(uuid.uuid4()), "--sale", str(uuid.uuid4()), "--strategy", "nope"],
            ["order", "--user", str(uuid.uuid4()), "--sale", str(uuid.uuid4())],
        ],
    )
    def test_one_line_error(self, args, database_url):
        proc = flashsale(*args, check=False)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "error" in proc.stderr

    @pytest.mark.parametrize(
        "args",
        [
            ["db", "reset", "--users", "0"],
            ["db", "reset", "--inventory", "-1"],
            ["db", "reset", "--per-user-limit", "0"],
            ["db", "reset", "--shards", "0"],
        ],
    )
    def test_bad_scenario_parameters_exit_2(self, args, database_url):
        """The README's exit status for bad input, whichever layer finds it bad (the scenario or the domain)."""
        proc = flashsale(*args, env={"FLASHSALE_DATABASE_URL": database_url}, check=False)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1

    def test_unreachable_database(self, tmp_path):
        url = f"postgresql://postgres@/flashsale?host={tmp_path}&port=1"
        proc = flashsale("db", "status", env={"FLASHSALE_DATABASE_URL": url}, check=False)
        assert proc.returncode == 3
        assert proc.stderr.startswith("flashsale: error: cannot connect to")
        assert len(proc.stderr.strip().splitlines()) == 1


class TestDemo:
    @pytest.mark.parametrize("strategy", ["pessimistic", "batched"])
    def test_sells_exactly_the_stock_and_the_audit_passes(self, database_url, strategy):
        proc = flashsale(
            "demo", "--buyers", "60", "--users", "40", "--inventory", "25", "--pool-size", "8",
            "--strategy", strategy, "--json", check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        # 60 buyers, 40 users with one unit each, 25 units: 25 sold, the rest refused by the stock or the limit.
        assert out["outcomes"]["created"] == 25
        assert sum(out["outcomes"].values()) == 60
        assert set(out["outcomes"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert (out["audit"]["ok"], out["audit"]["orders"], out["audit"]["remaining"]) == (True, 25, 0)
