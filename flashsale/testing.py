"""A fresh, migrated database for tests and notebooks: the embedded server on its own data directory,
started for the session and stopped (by pid) at its end, or `FLASHSALE_TEST_DATABASE_URL` if set. The tests empty
every table, so they never use `FLASHSALE_DATABASE_URL`, which may hold someone's data.

Used by the project's own pytest fixtures (tests/conftest.py); usable from a notebook or script too:

    with TestDatabase() as url:
        ...
"""

from __future__ import annotations

import os
from pathlib import Path

from flashsale import config
from flashsale.db import connection, embedded, migrate

TEST_DATABASE_URL_ENV = "FLASHSALE_TEST_DATABASE_URL"


class TestDatabase:
    __test__ = False  # not a pytest test class

    def __init__(self, pgdata: Path | None = None) -> None:
        self.pgdata = pgdata or config.state_dir() / "test-pgdata"
        self.url: str | None = None
        self._started_pid: int | None = None
        self._saved_env: str | None = None

    def __enter__(self) -> str:
        self._saved_env = os.environ.get(config.DATABASE_URL_ENV)
        if external := os.environ.get(TEST_DATABASE_URL_ENV):
            self.url = external
        else:
            already = embedded.running(self.pgdata)
            info = embedded.start(self.pgdata)
            self._started_pid = None if already else info.pid
            connection.ensure_database(info)
            self.url = info.url()
        # Subprocesses (the CLI, the HTTP service) inherit this and use the same server.
        os.environ[config.DATABASE_URL_ENV] = self.url
        with connection.connect(self.url) as conn:
            migrate.migrate(conn)
        return self.url

    def __exit__(self, *exc) -> None:
        if self._saved_env is None:
            os.environ.pop(config.DATABASE_URL_ENV, None)
        else:
            os.environ[config.DATABASE_URL_ENV] = self._saved_env
        if self._started_pid is not None:
            embedded.stop(self.pgdata)
