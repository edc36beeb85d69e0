"""Per-request records, kept in compact typed columns while the run goes (27 bytes a request: 27 MB a million)."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import numpy as np
import pandas as pd

from flashsale.load.outcomes import Outcomes

COLUMNS = ("start_s", "latency_ms", "send_lag_ms", "outcome", "status", "warmup")
LOCKS_SUFFIX = ".locks.parquet"  # a run's lock timeline lies beside its records: NAME.parquet, NAME.locks.parquet
SUMMARY_METADATA_KEY = b"flashsale.summary"  # the run's summary, as JSON in the records file's metadata


class RecordBuffer:
    """Append-only columns: start offset and latency in nanoseconds, outcome id, HTTP status (0 for the db target),
    and when the request was actually sent (an offset like the start).

    For the open model the start is the *scheduled* start, and the latency runs from it; the send offset shows how
    late the client was (a late wake-up, a busy loop), which the latency includes. In the closed model a request
    starts when it is sent: `add` without `sent_ns` records the start.
    """

    __slots__ = ("latency_ns", "outcome", "sent_ns", "start_ns", "status")

    def __init__(self) -> None:
        self.start_ns = array("q")
        self.latency_ns = array("q")
        self.outcome = array("B")
        self.status = array("H")
        self.sent_ns = array("q")

    def add(self, start_ns: int, latency_ns: int, outcome: int, status: int, sent_ns: int | None = None) -> None:
        self.start_ns.append(start_ns)
        self.latency_ns.append(latency_ns)
        self.outcome.append(outcome)
        self.status.append(status)
        self.sent_ns.append(start_ns if sent_ns is None else sent_ns)

    def __len__(self) -> int:
        return len(self.outcome)

    @property
    def nbytes(self) -> int:
        columns = (self.start_ns, self.latency_ns, self.outcome, self.status, self.sent_ns)
        return sum(col.itemsize * len(col) for col in columns)

    def to_frame(self, outcomes: Outcomes, *, warmup_s: float = 0.0) -> pd.DataFrame:
        """One row a request: `start_s` (from the run's start), `latency_ms`, `send_lag_ms` (from the start to when
        the request was sent: 0 but in the open model), `outcome` (categorical), `status`, `warmup` (True for
        requests started before the end of the warmup, which the summary leaves out)."""
        start_ns = np.frombuffer(self.start_ns, dtype=np.int64)
        codes = np.frombuffer(self.outcome, dtype=np.uint8)
        return pd.DataFrame(
            {
                "start_s": start_ns / 1e9,
                "latency_ms": np.frombuffer(self.latency_ns, dtype=np.int64) / 1e6,
                "send_lag_ms": (np.frombuffer(self.sent_ns, dtype=np.int64) - start_ns) / 1e6,
                "outcome": pd.Categorical.from_codes(codes.astype(np.int16), categories=outcomes.names),
                "status": np.frombuffer(self.status, dtype=np.uint16).copy(),
                "warmup": start_ns < round(warmup_s * 1e9),
            }
        )


def locks_path(path: Path) -> Path:
    """Where the lock timeline of the records at `path` lies."""
    return path.with_name(path.name.removesuffix(".parquet") + LOCKS_SUFFIX)


def write_run(
    path: Path, records: pd.DataFrame, timeline: pd.DataFrame, summary: dict | None = None
) -> tuple[Path, Path]:
    """The records to `path` (with `summary` in the file's metadata) and the lock timeline beside them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(records, preserve_index=False)
    if summary is not None:
        metadata = {**(table.schema.metadata or {}), SUMMARY_METADATA_KEY: json.dumps(summary, default=str).encode()}
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    locks = locks_path(path)
    timeline.to_parquet(locks, index=False)
    return path, locks


def read_run(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What `write_run` wrote: the records, the lock timeline (empty if there is none) and the summary ({} if none)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    summary = json.loads(metadata[SUMMARY_METADATA_KEY]) if SUMMARY_METADATA_KEY in metadata else {}
    locks = locks_path(path)
    timeline = pd.read_parquet(locks) if locks.exists() else pd.DataFrame()
    return table.to_pandas(), timeline, summary
