"""Where and how a measurement was taken: time, git commit, PostgreSQL version and settings, cores, memory, the
versions of the packages that matter. Each run adds where its parts ran and the load average before it (the load
runner's `meta.placement` and `meta.load_average_before`)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata

import psutil
from psycopg import AsyncConnection

from flashsale import __version__, config
from flashsale.repositories import server_settings


def git_commit() -> str:
    """The commit of the working tree, with `-dirty` when it has uncommitted changes; `unknown` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=config.PROJ_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=config.PROJ_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


# The packages a figure depends on: the driver, the pool, the service's server and framework, the load clients.
MEASURED_PACKAGES = (
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "uvicorn",
    "uvloop",
    "starlette",
    "aiohttp",
    "locust",
    "k6",
)


def package_versions() -> str:
    """`psycopg 3.2.9 · libpq 17.5 · ...`: the installed versions of `MEASURED_PACKAGES` (those installed) and the
    libpq the driver uses."""
    import psycopg

    found = []
    for name in MEASURED_PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    libpq = psycopg.pq.version()
    found.insert(1, f"libpq {libpq // 10000}.{libpq % 10000}")
    return " · ".join(found)


def machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "flashsale_version": __version__,
        "packages": package_versions(),
    }


async def run_context(conn: AsyncConnection) -> dict[str, object]:
    """One flat dict, ready to be added as columns to every result row."""
    settings = await server_settings.read(conn)
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "pg_version": settings["server_version"],
        "pg_synchronous_commit": settings["synchronous_commit"],
        "pg_max_connections": int(settings["max_connections"]),
        "pg_shared_buffers": settings["shared_buffers"],
        "pg_fsync": settings["fsync"],
        **machine(),
    }


def collect_context(url: str | None = None) -> dict[str, object]:
    """`run_context` from synchronous code (the sweep, a notebook): opens and closes its own connection."""
    from flashsale import aio
    from flashsale.db import connection

    async def read() -> dict[str, object]:
        conn = await connection.connect_async(url)
        async with conn:
            return await run_context(conn)

    return aio.run_anywhere(read())
