from __future__ import annotations

import os

import pytest

from flashsale import config, strategies
from flashsale.db import connection
from flashsale.services import scenario as scenario_module
from flashsale.testing import TEST_REDIS_URL_ENV, ScratchServer, TestDatabase, TestRedis
from tests.notebooks.tiny import TinySweep
from tests.waiting import HANG_S


@pytest.fixture(scope="session")
def database_url():
    """The URL of a migrated test database; the embedded server is stopped at the end of the session."""
    with TestDatabase() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url():
    """The URL of a Redis for the tests (`flashsale.testing.TestRedis`): an embedded Valkey started when a test first
    asks for it, so that a session without such a test starts none, and stopped by its pid at the end of the session."""
    with TestRedis() as url:
        yield url


@pytest.fixture
async def conn(database_url):
    """An autocommit async connection to the test database."""
    c = await connection.connect_async(database_url)
    async with c:
        yield c


@pytest.fixture
async def holder(database_url):
    """A second connection of the test's own, to hold the locks (the sale's row, a buyer's) that others must wait
    for while the test watches them queue."""
    c = await connection.connect_async(database_url)
    async with c:
        yield c


@pytest.fixture
async def make_scenario(database_url):
    """Call it to empty the database and create a fresh scenario; returns the `Scenario`."""

    async def make(**kwargs):
        c = await connection.connect_async(database_url)
        async with c:
            return await scenario_module.reset(c, **kwargs)

    return make


@pytest.fixture(scope="session", autouse=True)
def tiny_sweep(request, tmp_path_factory):
    """The tiny sweep of every notebook (`tests.notebooks.tiny`), started in the background as the session begins
    when the session holds a test that looks at it (through `swept`), so that the other tests run beside its two
    minutes of mostly waiting; None otherwise."""
    if not any("swept" in item.fixturenames for item in request.session.items):
        yield None
        return
    with TinySweep(tmp_path_factory.mktemp("sweep")) as sweep:
        yield sweep


@pytest.fixture(scope="session")
def scratch_server():
    """A second embedded server with a temporary data directory of its own, for the tests that stop and start their
    database (faults): the server the other tests use is never stopped. Started on first use, stopped by its pid
    and deleted at the end of the session; each test makes its own sale on it."""
    with ScratchServer() as server:
        yield server


@pytest.fixture
def scratch_redis(monkeypatch):
    """An embedded Valkey of the test's own (a fresh temporary directory under the project's state directory), for
    the tests that kill and restart their Redis (faults): the session's (`redis_url`) is never stopped. It is the
    configured Redis while the test runs (`FLASHSALE_REDIS_URL`, for the runner, the service and the CLI), and
    stopped by its pid afterwards. Skipped when the tests run on a Redis given by URL (`FLASHSALE_TEST_REDIS_URL`):
    only the project's own server can be faulted."""
    if os.environ.get(TEST_REDIS_URL_ENV):
        pytest.skip(f"Redis faults need an embedded Valkey, not {TEST_REDIS_URL_ENV}")
    with TestRedis(export_url=False) as url:
        monkeypatch.setenv(config.REDIS_URL_ENV, url)
        yield url


@pytest.fixture
async def pool(database_url):
    """A pool of 70 connections, enough for every concurrent buyer in the concurrency tests to hold its own; every
    connection is open before the test starts (a race must not depend on how fast they come up)."""
    p = connection.make_pool(database_url, size=70)
    await p.open(wait=True, timeout=HANG_S)
    try:
        yield p
    finally:
        await p.close()


# Parameters under which a retrying strategy never gives up in a test: its concurrency tests count orders exactly.
PATIENT = {"retries": 10_000, "backoff_s": 0.001, "max_backoff_s": 0.02}
RETRYING = ("pessimistic_nowait", "optimistic", "serializable")


@pytest.fixture
async def make_strategy(request):
    """Call it with a strategy name (and parameters) for an instance that is stopped at the end of the test;
    `patient=True` gives the retrying strategies enough retries never to answer `busy`. A strategy that needs
    Redis gets the session's (`redis_url`, started then if no test asked for it before)."""
    made = []

    def make(name, *, patient=False, **params):
        if patient and name in RETRYING:
            params = {**PATIENT, **params}
        if getattr(strategies.STRATEGIES.get(name), "needs_redis", False):
            params = {"redis_url": request.getfixturevalue("redis_url"), **params}
        strategy = strategies.get_strategy(name, **params)
        made.append(strategy)
        return strategy

    yield make
    for strategy in made:
        await strategy.stop()
