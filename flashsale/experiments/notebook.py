"""Small helpers the notebooks share: a quiet, consistent set-up and formatted tables."""

from __future__ import annotations

import functools
import numbers
import warnings
from typing import Any

import pandas as pd

CONTEXT_COLUMNS = {
    "time": "measured at (UTC)",
    "git_commit": "git commit",
    "pg_version": "PostgreSQL",
    "pg_synchronous_commit": "synchronous_commit",
    "pg_max_connections": "max_connections",
    "pg_shared_buffers": "shared_buffers",
    "cpu_count": "cores",
    "memory_gb": "memory (GiB)",
    "python": "Python",
    "meta.placement.ran_on.db": "database CPUs",
    "meta.placement.ran_on.service": "service CPUs",
    "meta.placement.ran_on.client": "client CPUs",
    "packages": "packages",
}
LOAD_BEFORE = "meta.load_average_before.1m"  # per run: shown as its range over the runs of one context


def setup() -> None:
    """Figures inline at a readable size; library warnings stay out of the reports."""
    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore")
    plt.rcParams.update({"figure.figsize": (9, 5), "figure.dpi": 100, "axes.titleweight": "bold"})
    pd.set_option("display.precision", 1)


def table(frame: pd.DataFrame, formats: dict[str, str] | None = None, caption: str | None = None):
    """A formatted table without the index (what the HTML export shows)."""
    styler = frame.style.hide(axis="index").format(formats or {}, na_rep="–")
    styler = styler.set_table_styles([{"selector": "td", "props": [("white-space", "nowrap")]}])  # 1,108.71 ms whole
    if caption:
        styler = styler.set_caption(caption)
    return styler


def metric_table(
    frame: pd.DataFrame,
    *,
    counts: tuple[str, ...] = (),
    shares: tuple[str, ...] = (),
    caption: str | None = None,
):
    """A table with one metric a row (the `metric` column) and one source a column, each row formatted as what
    it holds: the `counts` rows as whole numbers, the `shares` as percentages, the rest with two decimals."""
    frame = frame.reset_index(drop=True)
    styler = table(frame, caption=caption)
    values = [c for c in frame.columns if c != "metric"]
    for row, metric in frame["metric"].items():
        pattern = "{:,.0f}" if metric in counts else "{:.1%}" if metric in shares else "{:,.2f}"
        styler = styler.format(functools.partial(_number, pattern), subset=pd.IndexSlice[[row], values], na_rep="–")
    return styler


def _number(pattern: str, value: Any) -> str:
    """`value` by `pattern` if it is a number; anything else (a note in a table of figures) as it is."""
    return pattern.format(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else str(value)


def context(cells: pd.DataFrame):
    """Where the measurements were taken, from the context columns every row carries: one column per distinct
    context (usually one; a row a property, so that the table stays as narrow as the page), with the CPUs each
    part ran on, how many runs it holds and the range of the machine's load average (1 min) before them: near 0 on
    a quiet machine before the first run, and up to the load of the runs themselves after it (back-to-back runs
    inherit it), so read it as a range, not a verdict."""
    frame = context_frame(cells)
    frame.index = [f"context {i + 1}" for i in range(len(frame))] if len(frame) > 1 else ["measured"]
    shown = frame.T.reset_index(names="").astype(str)
    styler = shown.style.hide(axis="index").set_caption("Measurement context")
    return styler.set_table_styles([{"selector": "td", "props": [("white-space", "normal"), ("max-width", "60em")]}])


# Where each part ran: a run that did not start its service (a given base URL) has no service CPUs, which does not
# make it another context; the sets seen are listed together.
_CPU_COLUMNS = ("meta.placement.ran_on.db", "meta.placement.ran_on.service", "meta.placement.ran_on.client")


def context_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """`context`'s table as a frame: one row per distinct context."""
    present = [c for c in CONTEXT_COLUMNS if c in cells]
    keys = [c for c in present if c != "time" and c not in _CPU_COLUMNS]
    frame = cells[present].astype(object).where(cells[present].notna(), "–")
    frame["runs"] = 1
    frame["load"] = cells[LOAD_BEFORE] if LOAD_BEFORE in cells else float("nan")
    seen = {c: _sets_seen for c in _CPU_COLUMNS if c in frame}
    grouped = frame.groupby(keys, sort=False, dropna=False).agg(
        {**({"time": "first"} if "time" in frame else {}), **seen, "runs": "sum", "load": ["min", "max"]}
    )
    grouped.columns = [c if how != "min" and how != "max" else f"load {how}" for c, how in grouped.columns]
    out = grouped.reset_index()
    out["load average before (1 min)"] = [
        "–" if pd.isna(low) else f"{low:.2f}–{high:.2f}"
        for low, high in zip(out["load min"], out["load max"], strict=True)
    ]
    ordered = [c for c in present if c in out] + ["runs", "load average before (1 min)"]
    return out[ordered].rename(columns=CONTEXT_COLUMNS)


def _sets_seen(values: pd.Series) -> str:
    """The CPU sets a part ran on over the runs of one context ("0", or "0 / 0-1"), leaving out runs that did not
    say ("–"), unless none did."""
    sets = [v for v in dict.fromkeys(values) if v != "–"]
    return " / ".join(sets) if sets else "–"


def outcomes_of(cells: pd.DataFrame) -> pd.DataFrame:
    """One column per outcome (counts); see `cells.outcome_counts`."""
    from flashsale.experiments.cells import outcome_counts

    return outcome_counts(cells)
