"""A fresh, migrated database for tests and notebooks: the embedded server on its own data directory,
started for the session and stopped (by pid) at its end, or `FLASHSALE_TEST_DATABASE_URL` if set. The tests empty
every table, so they never use `FLASHSALE_DATABASE_URL`, which may hold someone's data.

Used by the project's own pytest fixtures (tests/conftest.py); usable from a notebook or script too:

    with TestDatabase() as url:
        ...

Tests that stop and start their database (faults) use a `ScratchServer` instead: a second embedded server on a
temporary data directory of its own, so that the server every other test uses is never taken away under them.

`TestRedis` does for Redis what `TestDatabase` does for PostgreSQL: an embedded Valkey of the tests' own, or
`FLASHSALE_TEST_REDIS_URL` if set; never `FLASHSALE_REDIS_URL`, whose server may hold someone's data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from flashsale import config
from flashsale.db import connection, embedded, migrate
from flashsale.kv import embedded as kv_embedded

TEST_DATABASE_URL_ENV = "FLASHSALE_TEST_DATABASE_URL"
TEST_REDIS_URL_ENV = "FLASHSALE_TEST_REDIS_URL"


class TestDatabase:
    __test__ = False  # not a pytest test class

    def __init__(self, pgdata: Path | None = None, *, export_url: bool = True) -> None:
        self.pgdata = pgdata or config.state_dir() / "test-pgdata"
        self.export_url = export_url  # set FLASHSALE_DATABASE_URL for subprocesses while it is entered
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
        if self.export_url:  # subprocesses (the CLI, the HTTP service) inherit this and use the same server
            os.environ[config.DATABASE_URL_ENV] = self.url
        with connection.connect(self.url) as conn:
            migrate.migrate(conn)
        return self.url

    def __exit__(self, *exc) -> None:
        if self.export_url:
            _restore_env(config.DATABASE_URL_ENV, self._saved_env)
        if self._started_pid is not None:
            embedded.stop(self.pgdata)


class ScratchServer:
    """A migrated embedded server of its own, on a fresh temporary data directory under the project's state
    directory (where the fault injector accepts it), started on entry and, on exit, stopped by its pid and deleted.

        with ScratchServer() as scratch:
            ... scratch.url, scratch.pgdata: stop it, start it again, nobody else notices ...

    It never exports its URL: give it explicitly to whatever should use it (`ServerProcess(env=...)`,
    `LoadConfig(database_url=...)`).
    """

    __test__ = False

    def __init__(self) -> None:
        self.root: Path | None = None
        self.pgdata: Path | None = None
        self.url: str | None = None

    def __enter__(self) -> ScratchServer:
        state = config.state_dir()
        state.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="scratch-", dir=state))
        self.root.chmod(0o755)  # as root, the server runs as its own system user, which must reach the directory
        self.pgdata = self.root / "pgdata"
        try:
            info = embedded.start(self.pgdata)
            connection.ensure_database(info)
            self.url = info.url()
            with connection.connect(self.url) as conn:
                migrate.migrate(conn)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.pgdata is not None:
                embedded.stop(self.pgdata)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)


class TestRedis:
    """The URL of a Redis for tests: `FLASHSALE_TEST_REDIS_URL` if set, else an embedded Valkey on a fresh temporary
    directory under the project's state directory, started on entry and, on exit, stopped by its pid and deleted.

        with TestRedis() as url:
            ...

    While it is entered, `FLASHSALE_REDIS_URL` names it, for the subprocesses (the CLI, the HTTP service).
    """

    __test__ = False

    def __init__(self, *, export_url: bool = True) -> None:
        self.export_url = export_url
        self.data_dir: Path | None = None
        self.url: str | None = None
        self._saved_env: str | None = None

    def __enter__(self) -> str:
        if external := os.environ.get(TEST_REDIS_URL_ENV):
            self.url = external
        else:
            state = config.state_dir()
            state.mkdir(parents=True, exist_ok=True)
            self.data_dir = Path(tempfile.mkdtemp(prefix="test-valkey-", dir=state))
            try:
                self.url = kv_embedded.start(self.data_dir).url()
            except BaseException:
                self.__exit__()
                raise
        if self.export_url:
            self._saved_env = os.environ.get(config.REDIS_URL_ENV)
            os.environ[config.REDIS_URL_ENV] = self.url
        return self.url

    def __exit__(self, *exc) -> None:
        if self.export_url and self.url is not None:
            _restore_env(config.REDIS_URL_ENV, self._saved_env)
        try:
            if self.data_dir is not None:
                kv_embedded.stop(self.data_dir)
        finally:
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def _restore_env(name: str, saved: str | None) -> None:
    """Put environment variable `name` back as it was (`saved`; None: unset)."""
    if saved is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = saved
