"""The reference line of a strategy that decides in Redis, as pgbench is for those that decide in SQL: Debian's
`redis-benchmark` (package redis-tools) sending the strategy's own Lua script (EVALSHA, as the strategy does) with
one connection a client, against the same Redis. It is not a dependency: where it is not installed, the reference
says so (`RedisBenchmarkMissing`) instead of giving a figure."""

from __future__ import annotations

import csv
import io
import resource
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from string import Template
from urllib.parse import parse_qs, unquote, urlsplit

import redis

from flashsale import placement
from flashsale.kv.connection import describe
from flashsale.strategies.base import RedisBenchmarkPlan

PROGRAM = "redis-benchmark"
INSTALL_HINT = f"{PROGRAM} is not installed here (Debian: apt install redis-tools), so there is no reference figure"


class RedisBenchmarkMissing(RuntimeError):
    """No redis-benchmark on this machine: the reference line is left out, and says why."""


class RedisBenchmarkFailed(RuntimeError):
    """redis-benchmark failed; the message ends with its last line of output, `output` holds all of it."""

    def __init__(self, message: str, output: str = "") -> None:
        last = output.strip().splitlines()[-1:] if output.strip() else []
        super().__init__(message + (f": {last[0].strip()}" if last else ""))
        self.output = output


@dataclass(frozen=True)
class RedisBenchmarkResult:
    rps: float  # requests (script calls: decisions) per second
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    clients: int
    requests: int
    duration_s: float  # requests / rps
    client_cpu_percent: float  # redis-benchmark's own CPU over its run, in percent of one core
    cpus: str | None

    def as_json(self) -> dict:
        return asdict(self)


def program_path() -> str | None:
    return shutil.which(PROGRAM)


def server_options(url: str) -> list[str]:
    """redis-benchmark's options for the server at `url`: a Unix socket (`-s`, with the password and database of
    the URL's query, as redis-py reads them), or any other URL as is (`-u`)."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return ["-u", url]
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    options = ["-s", unquote(parts.path)]
    if password := query.get("password") or (unquote(parts.password) if parts.password else None):
        options += ["-a", password, *(["--user", query["username"]] if "username" in query else [])]
    if db := query.get("db"):
        options += ["--dbnum", db]
    return options


def command(plan: RedisBenchmarkPlan, sha: str, variables: Mapping[str, str]) -> list[str]:
    """EVALSHA and its arguments, with the plan's `$name`s replaced by `variables`."""
    fill = [Template(part).substitute(variables) for part in (*plan.keys, *plan.args)]
    return ["EVALSHA", sha, str(len(plan.keys)), *fill]


def parse_csv(text: str) -> dict[str, float]:
    """The figures of redis-benchmark's `--csv` report (one test: its one row)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise RedisBenchmarkFailed(f"{PROGRAM} printed {len(rows)} result rows, not one", text)
    (row,) = rows
    try:
        return {
            "rps": float(row["rps"]),
            "latency_avg_ms": float(row["avg_latency_ms"]),
            "latency_p50_ms": float(row["p50_latency_ms"]),
            "latency_p95_ms": float(row["p95_latency_ms"]),
            "latency_p99_ms": float(row["p99_latency_ms"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise RedisBenchmarkFailed(f"{PROGRAM}'s report lacks a figure ({exc})", text) from exc


def run_redis_benchmark(
    url: str,
    plan: RedisBenchmarkPlan,
    *,
    users: int,
    variables: Mapping[str, str],
    cpus: str | None = None,
) -> RedisBenchmarkResult:
    """Load the plan's script into the server at `url`, then send it `plan.requests` times from `plan.clients`
    connections, users drawn among `users` (`-r`), `variables` in place of the plan's `$name`s; `cpus` runs
    redis-benchmark there, as the load runner's client runs. RedisBenchmarkMissing where it is not installed."""
    program = program_path()
    if program is None:
        raise RedisBenchmarkMissing(INSTALL_HINT)
    if plan.clients < 1 or plan.requests < 1 or users < 1:
        raise ValueError(
            f"clients, requests and users must be at least 1, got {plan.clients}, {plan.requests}, {users}"
        )
    try:
        with redis.Redis.from_url(url) as client:
            sha = str(client.script_load(plan.script))
    except (redis.RedisError, OSError) as exc:
        raise RedisBenchmarkFailed(f"cannot load the script into {describe(url)}: {exc}") from exc
    argv = [
        program,
        *server_options(url),
        "-c",
        str(plan.clients),
        "-n",
        str(plan.requests),
        "-r",
        str(users),
        "--csv",
        *command(plan, sha, variables),
    ]
    before, started = _children_cpu_s(), time.perf_counter()
    with placement.pinned_thread(cpus):  # redis-benchmark inherits the set of the thread that starts it
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    cpu_percent = 100.0 * (_children_cpu_s() - before) / (time.perf_counter() - started)
    if proc.returncode != 0:
        raise RedisBenchmarkFailed(f"{PROGRAM} exited with status {proc.returncode}", proc.stdout + proc.stderr)
    figures = parse_csv(proc.stdout)
    return RedisBenchmarkResult(
        **figures,
        clients=plan.clients,
        requests=plan.requests,
        duration_s=plan.requests / figures["rps"] if figures["rps"] else 0.0,
        client_cpu_percent=cpu_percent,
        cpus=cpus,
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
