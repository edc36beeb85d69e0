"""One run over several load-generating processes: what each one brings back, and the exact merge.

Every process (a native worker of `flashsale load --workers N`, or a Locust worker) measures from one common
origin (`time.perf_counter_ns()`, which is CLOCK_MONOTONIC on Linux and so shared by every process on the
machine) and returns a `WorkerResult`: its records as raw columns, the outcome names its ids stand for, the ids of
the orders it was told were created, its idempotency keys, its workload statistics and the CPU it used. `merge`
concatenates them: every request is kept, outcome ids are re-interned into one `Outcomes`, and percentiles are then
computed over all the requests together, never averaged across workers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import numpy as np

from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.retries import KeyedRetries
from flashsale.load.workloads import WorkloadStats


class Answers(Protocol):
    """What a worker keeps of its answers beside the records (a native target, or a Locust worker's orders): the
    outcome names, the orders it was told were created, its idempotency keys, and the orders answered 202 with
    their follow-ups and the status requests those sent."""

    outcomes: Outcomes
    acknowledged: bytearray
    retries: KeyedRetries | None
    accepted: bytearray
    settlements: RecordBuffer
    polls: int


@dataclass
class WorkerResult:
    """What one load-generating process measured (picklable: plain bytes and numbers)."""

    worker: int
    start_ns: bytes  # array("q"): start offsets from the common origin (the scheduled start in the open model)
    latency_ns: bytes  # array("q")
    outcome: bytes  # array("B"): ids into `outcome_names`
    status: bytes  # array("H"): HTTP status, 0 for the db target
    outcome_names: list[str]
    sent_ns: bytes = b""  # array("q"): when each request was actually sent, from the origin (empty: at its start)
    acknowledged: bytes = b""  # 16 bytes an order the worker was told was created
    stats: WorkloadStats = field(default_factory=WorkloadStats)
    cpu_s: float = 0.0  # user + system CPU of the process while it ran the workload
    wall_s: float = 0.0  # wall time over which `cpu_s` was measured
    keys: int = 0  # idempotency keys sent (0 without keys)
    retries: int = 0
    disagreements: int = 0
    acknowledged_keys: list[str] = field(default_factory=list)
    acknowledged_key_orders: list[bytes] = field(default_factory=list)  # 16 bytes each, beside `acknowledged_keys`
    strategy_counters: dict[str, int] | None = None
    # asynchronous orders (http target): the ids answered 202, and one record an accepted order followed to its end
    # (start, time to its terminal status, outcome id as in `outcome_names`), and the status requests sent
    accepted: bytes = b""
    settle_start_ns: bytes = b""
    settle_latency_ns: bytes = b""
    settle_outcome: bytes = b""
    polls: int = 0
    error: str | None = None  # set when the worker failed; the run then fails with this message

    @classmethod
    def from_buffer(cls, worker: int, records: RecordBuffer, outcomes: Outcomes, **fields) -> WorkerResult:
        return cls(
            worker=worker,
            start_ns=records.start_ns.tobytes(),
            latency_ns=records.latency_ns.tobytes(),
            outcome=records.outcome.tobytes(),
            status=records.status.tobytes(),
            sent_ns=records.sent_ns.tobytes(),
            outcome_names=list(outcomes.names),
            **fields,
        )

    @classmethod
    def measured(cls, worker: int, records: RecordBuffer, answers: Answers, **fields: Any) -> WorkerResult:
        """Worker `worker`'s result from its `records` and `answers`; `fields` add the rest (stats, CPU, wall time)."""
        keys = answers.retries.worker_fields() if answers.retries is not None else {}
        settled = answers.settlements
        return cls.from_buffer(
            worker,
            records,
            answers.outcomes,
            acknowledged=bytes(answers.acknowledged),
            accepted=bytes(answers.accepted),
            settle_start_ns=settled.start_ns.tobytes(),
            settle_latency_ns=settled.latency_ns.tobytes(),
            settle_outcome=settled.outcome.tobytes(),
            polls=answers.polls,
            **keys,
            **fields,
        )

    @property
    def cpu_percent(self) -> float | None:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else None

    @property
    def requests(self) -> int:
        return len(self.outcome)


@dataclass
class Merged:
    records: RecordBuffer
    acknowledged: bytearray
    stats: WorkloadStats
    keys: int
    retries: int
    disagreements: int
    acknowledged_keys: tuple[list[str], list[UUID]]
    strategy_counters: dict[str, int] | None
    cpu_percent: list[float | None]
    worker: np.ndarray  # the worker of each record, beside `records`
    accepted: bytearray  # 16 bytes an order answered 202 (asynchronous orders)
    settlements: RecordBuffer
    polls: int

    @functools.cached_property
    def accepted_ids(self) -> list[UUID]:
        """The orders answered 202, as ids (for the audit and the settlement report alike)."""
        return [UUID(bytes=bytes(self.accepted[i : i + 16])) for i in range(0, len(self.accepted), 16)]


def merge(results: Iterable[WorkerResult], outcomes: Outcomes) -> Merged:
    """Every worker's records in one buffer (outcome ids re-interned into `outcomes`), in worker order, and the
    sums of their counters. Raises RuntimeError for the first worker that failed."""
    results = sorted(results, key=lambda r: r.worker)
    for result in results:
        if result.error is not None:
            raise RuntimeError(f"load worker {result.worker} failed: {result.error}")
    records = RecordBuffer()
    settlements = RecordBuffer()
    accepted = bytearray()
    acknowledged = bytearray()
    stats = WorkloadStats()
    keys: list[str] = []
    key_orders: list[UUID] = []
    counters: dict[str, int] | None = None
    for result in results:
        ids = bytes(outcomes.id(name) for name in result.outcome_names) if result.outcome_names else b""
        records.start_ns.frombytes(result.start_ns)
        records.latency_ns.frombytes(result.latency_ns)
        records.outcome.frombytes(result.outcome.translate(_table(ids)))
        records.status.frombytes(result.status)
        records.sent_ns.frombytes(result.sent_ns or result.start_ns)
        acknowledged += result.acknowledged
        accepted += result.accepted
        settled = len(result.settle_outcome)
        settlements.start_ns.frombytes(result.settle_start_ns)
        settlements.latency_ns.frombytes(result.settle_latency_ns)
        settlements.outcome.frombytes(result.settle_outcome.translate(_table(ids)))
        settlements.status.frombytes(bytes(2 * settled))
        settlements.sent_ns.frombytes(result.settle_start_ns)
        stats.started += result.stats.started
        stats.late_starts += result.stats.late_starts
        stats.dropped_starts += result.stats.dropped_starts
        stats.interrupted += result.stats.interrupted
        stats.retry_after_waits += result.stats.retry_after_waits
        stats.retry_after_wait_s += result.stats.retry_after_wait_s
        stats.elapsed_s = max(stats.elapsed_s, result.stats.elapsed_s)
        keys += result.acknowledged_keys
        key_orders += [UUID(bytes=order) for order in result.acknowledged_key_orders]
        if result.strategy_counters is not None:
            counters = counters or {}
            for name, value in result.strategy_counters.items():
                counters[name] = counters.get(name, 0) + value
    return Merged(
        records=records,
        acknowledged=acknowledged,
        stats=stats,
        keys=sum(r.keys for r in results),
        retries=sum(r.retries for r in results),
        disagreements=sum(r.disagreements for r in results),
        acknowledged_keys=(keys, key_orders),
        strategy_counters=counters,
        cpu_percent=[r.cpu_percent for r in results],
        accepted=accepted,
        settlements=settlements,
        polls=sum(r.polls for r in results),
        worker=np.repeat(np.array([r.worker for r in results], dtype=np.uint16), [r.requests for r in results]),
    )


def _table(ids: bytes) -> bytes:
    """A bytes.translate table mapping a worker's outcome id i to ids[i] (ids past the known ones map to 255)."""
    return ids + bytes([255]) * (256 - len(ids))
