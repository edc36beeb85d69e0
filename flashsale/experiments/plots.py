"""The figures of the reports, as functions of the tidy tables (so two notebooks never copy plotting code).

Every function draws on the `ax` it is given (or a new one) and returns it. Unsafe strategies are drawn dashed
and labelled UNSAFE; a run whose audit failed is marked with a red cross and the word OVERSOLD.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from flashsale import strategies

OVERSOLD_COLOR = "#d62728"
PLAIN_NUMBERS = plt.FuncFormatter(lambda value, _: f"{value:g}")


def _strategy_label(name: str) -> str:
    cls = strategies.STRATEGIES.get(name)
    return f"{name} (UNSAFE)" if cls is not None and not cls.safe else name


def _strategy_color(name: str) -> tuple[float, float, float, float]:
    names = strategies.names()
    index = names.index(name) if name in names else len(names)
    return plt.get_cmap("tab10")(index % 10)


def _style(name: str) -> dict:
    cls = strategies.STRATEGIES.get(name)
    unsafe = cls is not None and not cls.safe
    return {"color": _strategy_color(name), "linestyle": "--" if unsafe else "-", "marker": "o", "markersize": 4}


def aggregate(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, standard deviation and count of `metric` per strategy and VU level, and whether any repeat failed
    its audit."""
    grouped = cells.groupby(["strategy", "vus"])
    out = grouped[metric].agg(["mean", "std", "count"]).reset_index()
    out["oversold"] = grouped["audit.ok"].apply(lambda ok: not bool(ok.all())).to_numpy()
    out["std"] = out["std"].fillna(0.0)
    return out


def versus_vus(
    cells: pd.DataFrame,
    metric: str,
    *,
    ylabel: str,
    title: str,
    reference: pd.DataFrame | None = None,
    reference_metric: str = "tps",
    log_y: bool = False,
    ax=None,
):
    """`metric` against virtual users (log2 axis), a line per strategy with error bars from the repeats; the
    pgbench reference of each strategy dotted in the same colour."""
    ax = ax or plt.subplots(figsize=(9, 5))[1]
    table = aggregate(cells, metric)
    for name, rows in table.groupby("strategy", sort=False):
        rows = rows.sort_values("vus")
        ax.errorbar(rows["vus"], rows["mean"], yerr=rows["std"], capsize=3, label=_strategy_label(name), **_style(name))
        bad = rows[rows["oversold"]]
        if not bad.empty:
            ax.scatter(bad["vus"], bad["mean"], marker="X", s=160, color=OVERSOLD_COLOR, zorder=5)
            for _, row in bad.iterrows():
                ax.annotate(
                    "OVERSOLD",
                    (row["vus"], row["mean"]),
                    textcoords="offset points",
                    xytext=(6, 6),
                    color=OVERSOLD_COLOR,
                    fontweight="bold",
                    fontsize=8,
                )
    if reference is not None and not reference.empty and reference_metric in reference:
        ref = reference.dropna(subset=[reference_metric]).groupby(["strategy", "clients"])[reference_metric].mean()
        for name, series in ref.groupby(level=0, sort=False):
            xs = series.index.get_level_values(1)
            ax.plot(xs, series.to_numpy(), linestyle=":", color=_strategy_color(name), linewidth=1.5)
        # One legend entry for all the reference lines: each has its strategy's colour.
        ax.plot([], [], linestyle=":", color="grey", label="dotted: pgbench replaying the same SQL")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(PLAIN_NUMBERS)
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PLAIN_NUMBERS)
    ax.set_xlabel("virtual users (concurrent clients, log2 scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return ax


def latency_cdf(requests: dict[str, pd.DataFrame], *, title: str, ax=None):
    """Empirical CDF of latency for each labelled run (log x axis)."""
    ax = ax or plt.subplots(figsize=(9, 5))[1]
    for label, frame in requests.items():
        latency = np.sort(frame.loc[~frame["warmup"], "latency_ms"].to_numpy())
        if latency.size:
            ax.plot(
                latency,
                np.arange(1, latency.size + 1) / latency.size,
                label=label,
                **{k: v for k, v in _style(label.split(",")[0]).items() if k not in ("marker", "markersize")},
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PLAIN_NUMBERS)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def latency_over_time(requests: pd.DataFrame, *, title: str, bucket_s: float = 0.25, ax=None):
    """Each request as a dot (start time, latency) coloured by outcome, with the p95 per time bucket as a line."""
    ax = ax or plt.subplots(figsize=(9, 4))[1]
    frame = requests.loc[~requests["warmup"]]
    for outcome, group in frame.groupby("outcome", observed=True):
        ax.scatter(group["start_s"], group["latency_ms"], s=3, alpha=0.35, label=str(outcome))
    buckets = (frame["start_s"] // bucket_s) * bucket_s
    p95 = frame.groupby(buckets)["latency_ms"].quantile(0.95)
    ax.plot(p95.index, p95.to_numpy(), color="black", label=f"p95 per {bucket_s * 1000:.0f} ms")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PLAIN_NUMBERS)
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return ax


def lock_waiters_over_time(timelines: dict[str, pd.DataFrame], *, title: str, ax=None):
    """Sessions waiting on a row lock (Lock:tuple + Lock:transactionid) in each pg_stat_activity sample."""
    ax = ax or plt.subplots(figsize=(9, 4))[1]
    for label, timeline in timelines.items():
        if timeline.empty:
            continue
        waiting = timeline["tuple"] + timeline["transactionid"]
        ax.plot(
            timeline["t_s"], waiting, label=label, drawstyle="steps-post", color=_strategy_color(label.split(",")[0])
        )
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel("sessions waiting on a row lock")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def outcome_latency(requests: dict[str, pd.DataFrame], *, title: str, ax=None):
    """p50 and p95 latency of each outcome (created, sold_out, ...) per run, as grouped bars."""
    rows = []
    for label, frame in requests.items():
        measured = frame.loc[~frame["warmup"]]
        for outcome, group in measured.groupby("outcome", observed=True):
            rows.append(
                {
                    "run": label,
                    "outcome": str(outcome),
                    "p50": group["latency_ms"].median(),
                    "p95": group["latency_ms"].quantile(0.95),
                    "count": len(group),
                }
            )
    table = pd.DataFrame(rows)
    ax = ax or plt.subplots(figsize=(9, 4))[1]
    if table.empty:
        return ax
    pivot = table.pivot_table(index="run", columns="outcome", values="p95")
    pivot.plot.bar(ax=ax, rot=20)
    ax.set_ylabel("p95 latency (ms)")
    ax.set_xlabel("")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="outcome", fontsize=8)
    return ax


# Outcomes of a fault run, grouped for the eye: answers of the database, then failures.
FAULT_GROUPS = {
    "orders (created or replayed)": ("created", "replayed"),
    "refused by the sale": (
        "sold_out",
        "per_user_limit_exceeded",
        "sale_not_active",
        "not_found",
        "invalid",
        "idempotency_key_reused",
    ),
}
FAULT_GROUP_COLORS = {"orders (created or replayed)": "#2ca02c", "refused by the sale": "#1f77b4"}
FAILURE_COLOR = "#d62728"


def mark_fault(ax, fault: dict) -> None:
    """Shade the time the database was down, and mark the injection and the first success after it."""
    if fault.get("injected_s") is None:
        return
    if fault.get("down_s") is not None and fault.get("up_s") is not None:
        ax.axvspan(fault["down_s"], fault["up_s"], color="grey", alpha=0.25, label="database down")
    ax.axvline(fault["injected_s"], color=FAILURE_COLOR, linestyle="--", linewidth=1, label="fault injected")
    if fault.get("recovered_s") is not None:
        ax.axvline(fault["recovered_s"], color="#2ca02c", linestyle=":", linewidth=1.5, label="first success after")


def outcomes_over_time(requests: pd.DataFrame, fault: dict, *, title: str, bucket_s: float = 0.25, ax=None):
    """Answers per second by when they arrived (the request's end), stacked: orders, refusals, and each kind of
    failure (503 `unavailable`, connection errors, ...), with the fault marked."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    frame = requests.loc[~requests["warmup"]]
    end_s = frame["start_s"] + frame["latency_ms"] / 1000
    bucket = (end_s // bucket_s) * bucket_s
    outcome = frame["outcome"].astype(str)
    grouped = outcome.copy()
    for group, names in FAULT_GROUPS.items():
        grouped[outcome.isin(names)] = group
    counts = pd.crosstab(bucket, grouped) / bucket_s
    order = [g for g in FAULT_GROUPS if g in counts] + sorted(c for c in counts if c not in FAULT_GROUPS)
    counts = counts[order]
    reds = plt.get_cmap("Reds")
    failures = [c for c in order if c not in FAULT_GROUPS]
    colors = [FAULT_GROUP_COLORS[c] for c in order if c in FAULT_GROUPS] + [
        reds(0.45 + 0.5 * i / max(1, len(failures) - 1)) for i in range(len(failures))
    ]
    ax.stackplot(counts.index, counts.T.to_numpy(), labels=order, colors=colors, step="post", alpha=0.85)
    mark_fault(ax, fault)
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel(f"answers per second ({bucket_s * 1000:.0f} ms buckets)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", ncol=2)
    return ax


def latency_through_fault(requests: pd.DataFrame, fault: dict, *, title: str, ax=None):
    """Every request's latency (dots by outcome, p95 line) with the fault marked."""
    ax = latency_over_time(requests, title=title, ax=ax)
    mark_fault(ax, fault)
    ax.legend(fontsize=8, ncol=2)
    return ax
