"""`flashsale redis ...`: the Redis (Valkey) server the project runs beside PostgreSQL."""

from __future__ import annotations

import argparse

from flashsale import aio, config
from flashsale.cli.output import add_json_command, emit
from flashsale.kv import embedded

# `flashsale.kv.connection` (redis-py) is imported by the commands that talk to Redis, not by every `flashsale` start.


def register(subparsers) -> None:
    redis = subparsers.add_parser("redis", help="start, inspect and stop the Redis (Valkey) server")
    commands = redis.add_subparsers(dest="redis_command", required=True, metavar="COMMAND")

    add_json_command(commands, "up", cmd_up, "start the embedded Valkey (unless FLASHSALE_REDIS_URL is set)")
    add_json_command(commands, "down", cmd_down, "stop the embedded Valkey by its pid")
    add_json_command(commands, "url", cmd_url, "print the Redis URL everything connects to")
    add_json_command(commands, "status", cmd_status, "is Redis up, which server and version, at which URL")


def cmd_up(args: argparse.Namespace) -> int:
    from flashsale.kv import connection

    external = config.external_redis_url() is not None
    already = None if external else embedded.running()
    url = connection.redis_url()
    server = aio.run(connection.usable_server(url))
    info = None if external else embedded.running()
    if external:
        how = f"{config.REDIS_URL_ENV} is set: nothing started"
    else:
        assert info is not None
        how = f"embedded, pid {info.pid}, " + ("already running" if already else "started")
    emit(
        args,
        {
            "url": url,
            "embedded": not external,
            "pid": info.pid if info else None,
            "started": not external and already is None,
            "server": server.name,
            "version": server.version,
        },
        f"{server.title} ready at {connection.describe(url)} ({how})",
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if config.external_redis_url() is not None:
        emit(args, {"stopped": None}, f"{config.REDIS_URL_ENV} is set: the external server is not ours to stop")
        return 0
    pid = embedded.stop()
    emit(args, {"stopped": pid}, f"stopped embedded Valkey (pid {pid})" if pid else "embedded Valkey was not running")
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    from flashsale.kv import connection

    url = connection.redis_url()
    emit(args, {"url": url}, url)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from flashsale.kv import connection

    external = config.external_redis_url() is not None
    info = None if external else embedded.running()
    if not external and info is None:
        data_dir = embedded.default_data_dir()
        emit(
            args,
            {"running": False, "embedded": True, "data_dir": str(data_dir)},
            f"embedded Valkey is not running (directory {data_dir})",
        )
        return 0
    url = connection.redis_url(start_embedded=False)
    server = aio.run(connection.describe_server(url))
    data = {
        "running": True,
        "embedded": info is not None,
        "pid": info.pid if info else None,
        "url": url,
        "server": server.name,
        "version": server.version,
        "redis_version": server.redis_version,
        "mode": server.mode,
        "supported": server.supported,
    }
    where = f"embedded, pid {info.pid}" if info else "external"
    lines = [f"running: {server.title} ({where}, {server.mode})", f"url: {connection.describe(url)}"]
    if not server.supported:
        lines.append(f"too old: flashsale needs Redis {connection.OLDEST_REDIS} or later, or Valkey")
    emit(args, data, "\n".join(lines))
    return 0
