"""`flashsale audit --sale` and `flashsale locustfile`, run as a user runs them, against the test database."""

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_cli import flashsale


@pytest.fixture
def sale_id(database_url) -> str:
    made = json.loads(flashsale("db", "reset", "--users", "3", "--inventory", "5", "--json").stdout)
    return made["flash_sale_id"]


class TestAuditCommand:
    def test_a_consistent_sale_passes(self, sale_id):
        proc = flashsale("audit", "--sale", sale_id)
        assert proc.stdout.strip() == f"sale {sale_id}: 0 orders, 0 of 5 units sold, 5 left: ok"

    def test_a_failed_audit_exits_1_with_its_problems(self, sale_id, database_url):
        with psycopg.connect(database_url) as conn:  # a unit gone from the row with no order to show for it
            conn.execute("UPDATE flash_sales SET remaining_inventory = 4 WHERE id = %s", (sale_id,))
        proc = flashsale("audit", "--sale", sale_id, "--json", check=False)
        assert proc.returncode == 1
        audited = json.loads(proc.stdout)
        assert (audited["ok"], audited["inventory_mismatch"]) == (False, -1)
        assert audited["problems"] == [
            "inventory row disagrees with orders: 0 confirmed units but total - remaining = 1"
        ]
        assert proc.stderr.count("\n") == 1
        assert "the audit of sale" in proc.stderr

    def test_an_unknown_sale_is_one_line_and_exit_1(self, database_url):
        unknown = uuid.uuid4()
        proc = flashsale("audit", "--sale", str(unknown), check=False)
        assert proc.returncode == 1
        assert proc.stderr == f"flashsale: error: flash sale {unknown} does not exist\n"


class TestLocustfileCommand:
    def test_prints_the_packaged_locustfile(self):
        path = Path(flashsale("locustfile").stdout.strip())
        assert path.name == "locustfile.py"
        assert path.parent.name == "locust"
        assert "class OrderingUser(FastHttpUser)" in path.read_text()
        assert json.loads(flashsale("locustfile", "--json").stdout) == {"path": str(path)}
