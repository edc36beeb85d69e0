"""Tidy files under `data/<dataset>/`: one row per cell and repeat in `cells.parquet`, the pgbench reference in
`pgbench.parquet`, and each cell's per-request records in `requests/<cell>.parquet` (its lock timeline beside it).
pandas alone reads every file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flashsale import config


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path

    @classmethod
    def named(cls, name: str, data_dir: Path | None = None) -> Dataset:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"a dataset name is one plain folder name, got {name!r}")
        return cls(name=name, root=(data_dir or config.DATA_DIR) / name)

    @property
    def cells_path(self) -> Path:
        return self.root / "cells.parquet"

    @property
    def pgbench_path(self) -> Path:
        return self.root / "pgbench.parquet"

    def requests_path(self, cell_id: str) -> Path:
        return self.root / "requests" / f"{cell_id}.parquet"

    def read_cells(self) -> pd.DataFrame:
        return pd.read_parquet(self.cells_path) if self.cells_path.exists() else pd.DataFrame()

    def read_pgbench(self) -> pd.DataFrame:
        return pd.read_parquet(self.pgbench_path) if self.pgbench_path.exists() else pd.DataFrame()

    def read_requests(self, cell_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.requests_path(cell_id))

    def read_locks(self, cell_id: str) -> pd.DataFrame:
        from flashsale.load.records import locks_path

        path = locks_path(self.requests_path(cell_id))
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def upsert(self, path: Path, rows: pd.DataFrame, key: str = "cell_id") -> pd.DataFrame:
        """Replace the rows of `path` that share `key` with `rows`, keep the others; returns the whole table."""
        path.parent.mkdir(parents=True, exist_ok=True)
        old = pd.read_parquet(path) if path.exists() else pd.DataFrame()
        if not old.empty:
            old = old[~old[key].isin(rows[key])]
        table = pd.concat([old, rows], ignore_index=True) if not old.empty else rows.reset_index(drop=True)
        table.to_parquet(path, index=False)
        return table
