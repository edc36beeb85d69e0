"""The physical reference line: the `pgbench` that ships with the embedded PostgreSQL, running the strategy's own
pgbench script (the same SQL the strategy sends) with one connection a client, against the same scenario."""

from __future__ import annotations

import math
import re
import resource
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

from flashsale import placement
from flashsale.db import embedded
from flashsale.load.config import available_cores
from flashsale.placement import parse_cpus

PROTOCOLS = ("prepared", "extended")  # the scripts pass a uuid as :sale, which needs a bind parameter

_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


class PgbenchFailed(RuntimeError):
    """pgbench failed; the message ends with its last line of output, `output` holds all of it."""

    def __init__(self, message: str, output: str = "") -> None:
        last = output.strip().splitlines()[-1:] if output.strip() else []
        super().__init__(message + (f": {last[0].strip()}" if last else ""))
        self.output = output


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_avg_ms: float
    clients: int
    threads: int
    client_cpu_percent: float | None  # pgbench's own CPU (user + system) over its run, in percent of one core
    cpus: str | None
    transactions: int
    failed: int
    duration_s: int
    protocol: str

    def as_json(self) -> dict:
        return asdict(self)


def parse_output(text: str) -> dict:
    """The figures of pgbench's report: tps (without connection time), average latency, transactions, failures."""
    found = {}
    for key, pattern, kind in (
        ("tps", _TPS, float),
        ("latency_avg_ms", _LATENCY, float),
        ("transactions", _PROCESSED, int),
        ("failed", _FAILED, int),
    ):
        match = pattern.search(text)
        if match is None and key != "failed":
            raise PgbenchFailed(f"pgbench printed no {key.replace('_', ' ')}", text)
        found[key] = kind(match.group(1)) if match else 0
    return found


def _children_cpu_s() -> float:
    """CPU used by this process's reaped children: pgbench's, measured around its run (nothing else is reaped
    meanwhile in the calling thread; another thread's child finishing then would count too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pgbench_path() -> Path:
    return embedded.bin_dir() / "pgbench"


def run_pgbench(
    url: str,
    *,
    script: str,
    flash_sale_id: UUID,
    users: int,
    clients: int,
    duration_s: float,
    quantity: int = 1,
    protocol: str = "prepared",
    threads: int | None = None,
    variables: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
    cpus: str | None = None,
) -> PgbenchResult:
    """Run `script` with `clients` connections for `duration_s` (whole seconds, at least 1) and parse the report.

    `variables` are further `--define`s and `options` further pgbench options, as a strategy's `pgbench_plan`
    asks for them (a batch size, `--max-tries`). `cpus` (a CPU list) runs pgbench there, as the load runner's
    client runs with the same `client_cpus`; its threads then default to one per CPU of the list."""
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    seconds = max(1, math.ceil(duration_s - 1e-9))
    # One thread per core (pgbench's -j), never more than clients: its C client then keeps up with any server here.
    cores = len(parse_cpus(cpus)) if cpus else available_cores()
    threads = threads or max(1, min(clients, cores))
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="flashsale-pgbench-") as file:
        file.write(script)
        file.flush()
        command = [
            str(pgbench_path()),
            "--no-vacuum",
            "--file",
            file.name,
            "--client",
            str(clients),
            "--jobs",
            str(threads),
            "--time",
            str(seconds),
            "--protocol",
            protocol,
            "--define",
            f"sale={flash_sale_id}",
            "--define",
            f"users={users}",
            "--define",
            f"quantity={quantity}",
            *(f"--define={name}={value}" for name, value in (variables or {}).items()),
            *options,
            url,
        ]
        before, started = _children_cpu_s(), time.perf_counter()
        with placement.pinned_thread(cpus):  # pgbench inherits the set of the thread that starts it
            proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
        cpu_percent = 100.0 * (_children_cpu_s() - before) / (time.perf_counter() - started)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise PgbenchFailed(f"pgbench exited with status {proc.returncode}", output)
    return PgbenchResult(
        clients=clients,
        threads=threads,
        client_cpu_percent=cpu_percent,
        cpus=cpus,
        duration_s=seconds,
        protocol=protocol,
        **parse_output(output),
    )
