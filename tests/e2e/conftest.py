"""End-to-end fixtures: the real `flashsale serve` process on a free loopback port, against the test database."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from uuid import UUID

import psycopg
import pytest

from flashsale import aio
from flashsale.db import connection
from flashsale.services import scenario
from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api

POOL_SIZE = 4


@pytest.fixture(scope="session")
def server(database_url, tmp_path_factory):
    """One server for the session (tests that need other settings start their own)."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServerProcess(pool_size=POOL_SIZE, pool_timeout=2, log_path=log_path) as process:
        yield process
    # uvicorn shuts down gracefully, then re-raises SIGTERM so that the exit status says what stopped it.
    assert process.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in [line["message"] for line in process.log_lines()]


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.url)


@dataclass(frozen=True)
class Sale:
    id: UUID
    user_ids: list[UUID]
    inventory: int
    per_user_limit: int


def make_sale(database_url: str, **kwargs) -> Sale:
    """Empty the database and create a scenario (synchronously, for plain test functions)."""

    async def go() -> scenario.Scenario:
        conn = await connection.connect_async(database_url)
        async with conn:
            return await scenario.reset(conn, **kwargs)

    made = aio.run(go())
    with psycopg.connect(database_url) as conn:
        user_ids = [row[0] for row in conn.execute("SELECT id FROM users ORDER BY id")]
    return Sale(id=made.flash_sale_id, user_ids=user_ids, inventory=made.inventory, per_user_limit=made.per_user_limit)


@pytest.fixture
def sale(database_url) -> Sale:
    """A fresh open sale: 10 users, 5 units, at most 2 per user."""
    return make_sale(database_url, users=10, inventory=5, per_user_limit=2)


def count_orders(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]
