"""Replaying a strategy's SQL with pgbench (the binary bundled with the embedded PostgreSQL): the reference for
what the database alone sustains with the same statements, free of any Python client cost."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from uuid import UUID

from flashsale.db import embedded
from flashsale.strategies.base import PgbenchPlan

_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


class ReplayFailed(RuntimeError):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n{output.strip()}")
        self.output = output


@dataclass(frozen=True)
class Replay:
    tps: float  # pgbench transactions per second (failed ones excluded)
    transactions: int
    failed: int
    orders_per_s: float  # tps * the orders one transaction stands for (a batch, for `batched`)
    output: str


def replay(
    url: str,
    plan: PgbenchPlan,
    *,
    flash_sale_id: UUID,
    users: int,
    quantity: int = 1,
    duration_s: int | None = None,
    transactions: int | None = None,
) -> Replay:
    """Run the plan's script with its clients for `duration_s` whole seconds or `transactions` per client.

    Prepared protocol: the statements are prepared once per connection, as psycopg does after a few executions,
    and the scripts' uuid variables travel as bind parameters.
    """
    if (duration_s is None) == (transactions is None):
        raise ValueError("give either duration_s or transactions")
    limit = ["--time", str(duration_s)] if duration_s is not None else ["--transactions", str(transactions)]
    variables = {"sale": str(flash_sale_id), "users": str(users), "quantity": str(quantity), **plan.variables}
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="flashsale-replay-") as script:
        script.write(plan.script)
        script.flush()
        command = [
            str(embedded.bin_dir() / "pgbench"),
            "--no-vacuum",
            "--protocol=prepared",
            f"--file={script.name}",
            f"--client={plan.clients}",
            f"--jobs={max(1, min(plan.clients, os.cpu_count() or 1))}",
            *limit,
            *(f"--define={name}={value}" for name, value in variables.items()),
            *plan.options,
            url,
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=(duration_s or 60) + 120, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "aborted in command" in output:
        raise ReplayFailed(f"pgbench failed (exit status {proc.returncode})", output)
    tps, processed = _TPS.search(output), _PROCESSED.search(output)
    if tps is None or processed is None:
        raise ReplayFailed("pgbench printed no tps", output)
    failed = _FAILED.search(output)
    return Replay(
        tps=float(tps.group(1)),
        transactions=int(processed.group(1)),
        failed=int(failed.group(1)) if failed else 0,
        orders_per_s=float(tps.group(1)) * plan.orders_per_transaction,
        output=output,
    )
