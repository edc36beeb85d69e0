"""The figures of the reports, as functions of the tidy tables (so two notebooks never copy plotting code).

Every function draws on the `ax` it is given (or a new one) and returns it. Unsafe strategies are drawn dashed
and labelled UNSAFE; a run whose audit failed is marked with a red cross and the word OVERSOLD.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import LogFormatter

from flashsale import strategies
from flashsale.contract import ACCEPTED, CREATED, DECIDED, REPLAYED, SALE_REFUSALS, SERVICE_REFUSALS
from flashsale.experiments import analysis
from flashsale.experiments.analysis import strategy_label as _strategy_label

OVERSOLD_COLOR = "#d62728"
PLAIN_NUMBERS = plt.FuncFormatter(lambda value, _: f"{value:g}")


class PlainLogFormatter(LogFormatter):
    """Log-axis labels as plain numbers (2,000, not 2x10^3); as minor formatter it labels some of the 2..9 ticks
    when the axis spans less than two decades, so that a narrow axis still carries numbers."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:,.0f}" if x >= 1 else f"{x:g}"  # matplotlib's own writes 6e-01 below 1 and 2e+04 above 10,000


def _plain_log(axis) -> None:
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _strategy_color(name: str) -> tuple[float, float, float, float]:
    names = strategies.names()
    index = names.index(name) if name in names else len(names)
    return plt.get_cmap("tab10")(index % 10)


def _style(name: str) -> dict:
    cls = strategies.STRATEGIES.get(name)
    unsafe = cls is not None and not cls.safe
    return {"color": _strategy_color(name), "linestyle": "--" if unsafe else "-", "marker": "o", "markersize": 4}


def aggregate(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The median, range (min, max) and count (`n`) of `metric` per strategy and VU level (`analysis.spread`), and
    whether any repeat failed its audit."""
    out = analysis.spread(cells, ["strategy", "vus"], metric)
    grouped = cells.groupby(["strategy", "vus"], sort=False)
    out["oversold"] = grouped["audit.ok"].apply(lambda ok: not bool(ok.all())).to_numpy()
    return out


def _range_bars(ax, rows: pd.DataFrame, **style):
    """The median at each level, with the range of the repeats as error bars (none for a single run)."""
    yerr = None
    if (rows["n"] > 1).any():
        yerr = [(rows["median"] - rows["min"]).to_numpy(), (rows["max"] - rows["median"]).to_numpy()]
    return ax.errorbar(rows["vus"], rows["median"], yerr=yerr, **{"capsize": 2, "elinewidth": 1, **style})


def _mark_oversold(ax, rows: pd.DataFrame) -> None:
    bad = rows[rows["oversold"]]
    if bad.empty:
        return
    ax.scatter(bad["vus"], bad["median"], marker="X", s=90, color=OVERSOLD_COLOR, zorder=5)
    ax.annotate(
        "OVERSOLD",
        (bad["vus"].iloc[-1], bad["median"].iloc[-1]),
        textcoords="offset points",
        xytext=(-8, 8),
        ha="right",
        color=OVERSOLD_COLOR,
        fontweight="bold",
        fontsize=7,
    )


def _vus_axis(ax, *, log_y: bool, label: bool = True) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(PLAIN_NUMBERS)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    if log_y:
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
    if label:
        ax.set_xlabel("virtual users (log2)")
    ax.grid(True, which="major", alpha=0.3)


def _panel_grid(strategies_shown: list[str], *, ncols: int = 3, overview_title: str):
    """A figure with a compact overview on the left and one small panel per strategy beside it (shared axes)."""
    nrows = max(1, -(-len(strategies_shown) // ncols))
    fig = plt.figure(figsize=(14, max(3.6, 2.6 * nrows + 0.8)), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols + 2, width_ratios=[1.35, 0.08, *([1] * ncols)])
    overview = fig.add_subplot(grid[:, 0])
    overview.set_title(overview_title, fontsize=10)
    panels: dict[str, plt.Axes] = {}
    first = None
    for i, name in enumerate(strategies_shown):
        ax = fig.add_subplot(grid[i // ncols, 2 + i % ncols], sharex=first, sharey=first)
        first = first or ax
        ax.set_title(_strategy_label(name), fontsize=9, color=_strategy_color(name))
        ax.tick_params(labelsize=7)
        panels[name] = ax
    return fig, overview, panels


def rates_by_strategy(
    cells: pd.DataFrame,
    *,
    title: str,
    reference: pd.DataFrame | None = None,
    ceilings: pd.DataFrame | None = None,
):
    """Requests/s (throughput) and orders/s (goodput) against virtual users, one small panel per strategy on shared
    log axes: the range of the repeats as error bars, pgbench's orders/s replaying the same SQL dotted, and for the
    single-row designs that time their lock the ceiling 1 / lock hold (`analysis.lock_hold_ceilings`) dash-dotted.
    Beside them, a compact overview: every strategy's goodput on one axis."""
    rps, orders = aggregate(cells, "rps"), aggregate(cells, "orders_per_s")
    shown = list(dict.fromkeys(cells["strategy"]))
    fig, overview, panels = _panel_grid(shown, overview_title="goodput, every strategy (orders/s)")
    refs = (
        reference.dropna(subset=["orders_per_s"]).groupby(["strategy", "clients"])["orders_per_s"].median()
        if reference is not None and not reference.empty and "orders_per_s" in reference
        else pd.Series(dtype=float)
    )
    for name, ax in panels.items():
        color = _strategy_color(name)
        mine = orders[orders["strategy"] == name].sort_values("vus")
        _range_bars(ax, rps[rps["strategy"] == name].sort_values("vus"), color="grey", marker=".", lw=1)
        _range_bars(ax, mine, color=color, marker="o", markersize=3, lw=1.6)
        _mark_oversold(ax, mine)
        if name in refs.index.get_level_values(0):
            ref = refs.loc[name]
            ax.plot(ref.index, ref.to_numpy(), linestyle=":", color=color, lw=1.5)
        if ceilings is not None and name in set(ceilings["strategy"]):
            bound = ceilings[ceilings["strategy"] == name].sort_values("vus")
            ax.plot(bound["vus"], bound["ceiling"], linestyle="-.", color="black", lw=1)
        _vus_axis(ax, log_y=True, label=False)
        line = _style(name)
        overview.plot(mine["vus"], mine["median"], label=_strategy_label(name), lw=1.4, **line)
    _vus_axis(overview, log_y=True)
    overview.set_ylabel("orders created per second (log)")
    overview.legend(fontsize=7, loc="upper left", frameon=False)
    key = [
        plt.Line2D([], [], color="grey", marker=".", lw=1, label="requests/s (throughput)"),
        plt.Line2D(
            [], [], color="black", marker="o", markersize=3, lw=1.6, label="orders/s (goodput), strategy's colour"
        ),
        plt.Line2D([], [], color="black", linestyle=":", lw=1.5, label="pgbench, same SQL (orders/s)"),
        plt.Line2D([], [], color="black", linestyle="-.", lw=1, label="1 / lock hold (single-row designs)"),
    ]
    fig.legend(handles=key, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontweight="bold")
    return fig


def metric_by_strategy(cells: pd.DataFrame, metric: str, *, title: str, ylabel: str, overview_title: str):
    """`metric` (e.g. `latency_ms.p95`) against virtual users, one small panel per strategy on shared log axes with
    the range of the repeats as error bars; beside them every strategy's line on one axis."""
    table = aggregate(cells, metric)
    shown = list(dict.fromkeys(cells["strategy"]))
    fig, overview, panels = _panel_grid(shown, overview_title=overview_title)
    for name, ax in panels.items():
        mine = table[table["strategy"] == name].sort_values("vus")
        _range_bars(ax, mine, color=_strategy_color(name), marker="o", markersize=3, lw=1.6)
        _mark_oversold(ax, mine)
        _vus_axis(ax, log_y=True, label=False)
        overview.plot(mine["vus"], mine["median"], label=_strategy_label(name), lw=1.4, **_style(name))
    _vus_axis(overview, log_y=True)
    overview.set_ylabel(ylabel)
    overview.legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(title, fontweight="bold")
    return fig


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
    _plain_log(ax.xaxis)
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
    _plain_log(ax.yaxis)
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return ax


def lock_waiters_by_strategy(timelines: dict[str, pd.DataFrame], *, title: str, ncols: int = 3):
    """Sessions waiting on a row lock during each run, one small panel per run (shared axes), so that no strategy's
    line hides another's."""
    shown = {label: t for label, t in timelines.items() if not t.empty}
    ncols = max(1, min(ncols, len(shown)))
    nrows = max(1, -(-len(shown) // ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(4 * ncols, 2.3 * nrows + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (label, timeline) in zip(axes.flat, shown.items(), strict=False):
        waiting = timeline["tuple"] + timeline["transactionid"]
        color = _strategy_color(label.split(",")[0])
        ax.fill_between(timeline["t_s"], waiting, step="post", color=color, alpha=0.35)
        ax.plot(timeline["t_s"], waiting, drawstyle="steps-post", color=color, lw=1)
        ax.set_title(label, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.supxlabel("time since the start of the run (s)", fontsize=9)
    fig.supylabel("sessions waiting on a row lock", fontsize=9)
    fig.suptitle(title, fontweight="bold")
    return fig


def outcome_latency(requests: dict[str, pd.DataFrame], *, title: str, ax=None):
    """The p95 latency of each outcome (created, busy, sold_out, ...) per run, as horizontal grouped bars."""
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
    ax = ax or plt.subplots(figsize=(9, 1.2 + 0.45 * max(1, len(requests))))[1]
    if table.empty:
        return ax
    # One bar group a run, in the order given, first at the top; horizontal, so that long run labels stay legible.
    pivot = table.pivot_table(index="run", columns="outcome", values="p95").reindex(list(requests)[::-1])
    pivot.plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("p95 latency (ms)")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(title="outcome", fontsize=8, loc="lower right")
    return ax


# Every answer of a load run, grouped for the eye by the contract's groups (`flashsale.contract`), the successes
# split into orders and accepted orders; an outcome in no group is an error.
ANSWER_GROUPS = {
    "orders (created or replayed)": (CREATED, REPLAYED),
    "accepted (202, settled later)": (ACCEPTED,),
    "refused by the sale": SALE_REFUSALS,
    "refused for now (429, 503)": SERVICE_REFUSALS,
}
ANSWER_GROUP_COLORS = {
    "orders (created or replayed)": "#2ca02c",
    "accepted (202, settled later)": "#98df8a",
    "refused by the sale": "#1f77b4",
    "refused for now (429, 503)": "#ff7f0e",
}
# Outcomes of a fault run: the answers that needed the database grouped, then every kind of failure by its name.
FAULT_GROUPS = {group: names for group, names in ANSWER_GROUPS.items() if set(names) <= set(DECIDED)}
FAILURE_COLOR = "#d62728"


def mark_fault(ax, fault: dict) -> None:
    """Shade the time the server (the database, or Redis) was down, and mark the injection and the first success
    after it."""
    if fault.get("injected_s") is None:
        return
    if fault.get("down_s") is not None and fault.get("up_s") is not None:
        server = fault.get("server") or "database"  # a Redis fault says so
        ax.axvspan(fault["down_s"], fault["up_s"], color="grey", alpha=0.25, label=f"{server} down")
    ax.axvline(fault["injected_s"], color=FAILURE_COLOR, linestyle="--", linewidth=1, label="fault injected")
    if fault.get("recovered_s") is not None:
        ax.axvline(fault["recovered_s"], color="#2ca02c", linestyle=":", linewidth=1.5, label="first success after")


def _answer_rates(
    frame: pd.DataFrame, groups: dict[str, tuple[str, ...]], other: str | None, bucket_s: float, ax
) -> tuple[pd.DataFrame, pd.Series]:
    """Answers per second by when they arrived (the request's end), one column per kind, in `bucket_s` buckets;
    a kind is the group of `groups` that names the outcome, else `other` (None: the outcome's own name). Labels
    the axes. Returns the rates and each answer's kind."""
    outcome = frame["outcome"].astype(str)
    kind = outcome.copy() if other is None else pd.Series(other, index=outcome.index)
    for group, names in groups.items():
        kind[outcome.isin(names)] = group
    end_s = frame["start_s"] + frame["latency_ms"] / 1000
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel(f"answers per second ({bucket_s * 1000:.0f} ms buckets)")
    return pd.crosstab((end_s // bucket_s) * bucket_s, kind) / bucket_s, kind


def outcomes_over_time(requests: pd.DataFrame, fault: dict, *, title: str, bucket_s: float = 0.25, ax=None):
    """Answers per second by when they arrived (the request's end), stacked: orders, accepted orders, refusals by
    the sale, and each kind of failure (503 `unavailable`, connection errors, ...), with the fault marked."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    counts, _ = _answer_rates(requests.loc[~requests["warmup"]], FAULT_GROUPS, None, bucket_s, ax)
    order = [g for g in FAULT_GROUPS if g in counts] + sorted(c for c in counts if c not in FAULT_GROUPS)
    counts = counts[order]
    reds = plt.get_cmap("Reds")
    failures = [c for c in order if c not in FAULT_GROUPS]
    colors = [ANSWER_GROUP_COLORS[c] for c in order if c in FAULT_GROUPS] + [
        reds(0.45 + 0.5 * i / max(1, len(failures) - 1)) for i in range(len(failures))
    ]
    ax.stackplot(counts.index, counts.T.to_numpy(), labels=order, colors=colors, step="post", alpha=0.85)
    mark_fault(ax, fault)
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


def answers_over_time(
    requests: pd.DataFrame, *, title: str, bucket_s: float | None = None, sale_opens_s: float | None = None, ax=None
):
    """Answers per second by when they arrived, stacked by kind: orders, accepted orders, refusals by the sale,
    refusals for now (429, 503: admission control, a busy strategy, an unavailable database), and anything else
    (errors) in red. Each kind's total is in the
    legend, since a few orders among thousands of refusals a second are too thin to see. `bucket_s` defaults to a
    twentieth of the run (at least 100 ms, at most 500 ms); `sale_opens_s` marks when the sale opened."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    frame = requests.loc[~requests["warmup"]]
    if bucket_s is None:
        span = (
            float((frame["start_s"] + frame["latency_ms"] / 1000).max() - frame["start_s"].min())
            if len(frame)
            else 10.0
        )
        bucket_s = min(0.5, max(0.1, round(span / 20, 1)))
    counts, kind = _answer_rates(frame, ANSWER_GROUPS, "errors", bucket_s, ax)
    ax.set_title(title)
    if frame.empty:  # nothing measured: the axes, and nothing on them
        return ax
    order = [g for g in (*ANSWER_GROUPS, "errors") if g in counts]
    totals = kind.value_counts()
    labels = [f"{g}: {totals[g]:,}" for g in order]
    colors = [ANSWER_GROUP_COLORS.get(g, FAILURE_COLOR) for g in order]
    ax.stackplot(counts.index, counts[order].T.to_numpy(), labels=labels, colors=colors, step="post", alpha=0.85)
    if sale_opens_s is not None and not pd.isna(sale_opens_s):
        ax.axvline(sale_opens_s, color="black", linestyle="--", linewidth=1, label="the sale opens")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.95)
    return ax


def queue_depth_over_time(timelines: dict[str, pd.DataFrame], *, capacity: int, title: str, ax=None):
    """The service's order queue depth over time (sampled from its /metrics beside the lock samples), one line a
    run, with the queue's capacity."""
    ax = ax or plt.subplots(figsize=(10, 3.5))[1]
    highest = float(capacity)
    for label, timeline in timelines.items():
        if "queue_depth" in timeline:
            ax.step(timeline["t_s"], timeline["queue_depth"], where="post", label=label)
            highest = max(highest, float(timeline["queue_depth"].max()))  # several processes' queues add up
    ax.axhline(capacity, color="grey", linestyle="--", linewidth=1, label=f"capacity ({capacity})")
    ax.set_ylim(0, highest * 1.1)  # from zero: a queue that sits at its capacity reads as full, not as a wiggle
    ax.set_xlabel("time since the start of the run (s)")
    ax.set_ylabel("orders waiting in the queue")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def answer_and_settlement(cells: pd.DataFrame, *, title: str, ax=None):
    """For each run (label), p50 and p95 of the answer to the order (ms, log scale) and, for accepted orders, of the
    time until the client saw them settled: the median of its repeats, their range as error bars."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    labels = list(dict.fromkeys(cells["label"]))
    x = np.arange(len(labels))
    series = {
        "answer p50": "latency_ms.p50",
        "answer p95": "latency_ms.p95",
        "settled p50": "meta.async.time_to_terminal_ms.p50",
        "settled p95": "meta.async.time_to_terminal_ms.p95",
    }
    width = 0.2
    for i, (name, column) in enumerate(series.items()):
        if column not in cells:
            continue
        rows = analysis.spread(cells, "label", column).set_index("label").reindex(labels)
        yerr = [(rows["median"] - rows["min"]).to_numpy(), (rows["max"] - rows["median"]).to_numpy()]
        ax.bar(x + (i - 1.5) * width, rows["median"].to_numpy(dtype=float), width, yerr=yerr, capsize=2, label=name)
    ax.set_xticks(x, labels, rotation=15, ha="right")
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_ylabel("ms (log scale)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def admitted_per_user(runs: pd.DataFrame, *, title: str, ax=None):
    """Orders a second each user had admitted by the rate limit (`analysis.admitted_per_user`), one bar a set-up (the
    median of its repeats, their range as error bars), against the limit (dashed) and the limit times the set-up's
    processes (dotted): where a limit held per process, its users got that many times the limit."""
    ax = ax or plt.subplots(figsize=(9, 3.8))[1]
    rows = analysis.spread(runs, "label", "admitted").merge(
        runs.groupby("label", sort=False)[["limit", "processes"]].first().reset_index(), on="label"
    )
    x = np.arange(len(rows))
    yerr = [(rows["median"] - rows["min"]).to_numpy(), (rows["max"] - rows["median"]).to_numpy()]
    colors = ["#ff7f0e" if "local" in label.lower() else "#1f77b4" for label in rows["label"]]
    ax.bar(x, rows["median"], 0.55, yerr=yerr, capsize=3, color=colors, alpha=0.85)
    for i, row in rows.iterrows():
        ax.annotate(f"{row['median'] / row['limit']:.2f}x the limit", (i, row["median"]), textcoords="offset points",
                    xytext=(0, -16), ha="center", fontsize=9, color="white", fontweight="bold")  # fmt: skip
    limit = float(rows["limit"].iloc[0]) if len(rows) else 0.0
    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"the limit ({limit:g} orders/s per user)")
    for processes in sorted(set(rows["processes"]) - {1}):
        ax.axhline(limit * processes, color="grey", linestyle=":", linewidth=1.5,
                   label=f"{processes} processes x the limit")  # fmt: skip
    ax.set_xticks(x, rows["label"])
    ax.set_ylim(0, max([limit * max(rows["processes"], default=1), *rows["max"]], default=1) * 1.25)
    ax.set_ylabel("admitted orders/s per user")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return ax


SALE_COLORS = ("#6baed6", "#08519c", "#bdbdbd")  # one a sale: neither green nor red, which say order and OVERSOLD
# The stock gate's panels: (title, column of the cells, y label, log scale)
GATE_PANELS = (
    ("requests/s", "rps", "requests answered per second (log)", True),
    ("p95 latency", "latency_ms.p95", "ms (log)", True),
    ("PostgreSQL transactions per request", "meta.pg_transactions.per_request", "transactions per request", False),
)


def gate_against(cells: pd.DataFrame, reference: pd.DataFrame | None = None, *, title: str):
    """The stock gate against the database's designs, one panel a figure (requests/s, p95, PostgreSQL transactions
    per request), one group of bars a strategy, one bar a sale: the median of the repeats, their range as error bars;
    on requests/s, each strategy's reference line (pgbench's transactions/s, redis-benchmark's decisions/s) as a
    black tick above its bar."""
    sales = list(dict.fromkeys(label.split(", ", 1)[1] for label in cells["label"]))
    shown = list(dict.fromkeys(cells["strategy"]))
    fig, axes = plt.subplots(1, len(GATE_PANELS), figsize=(14, 4.2), layout="constrained")
    width = 0.8 / max(1, len(sales))
    refs = reference if reference is not None and not reference.empty and "tps" in reference else None
    for ax, (name, column, ylabel, log) in zip(axes, GATE_PANELS, strict=True):
        for i, sale in enumerate(sales):
            mine = cells[cells["label"].str.endswith(f", {sale}")]
            rows = analysis.spread(mine, "strategy", column).set_index("strategy").reindex(shown)
            x = np.arange(len(shown)) + (i - (len(sales) - 1) / 2) * width
            yerr = [(rows["median"] - rows["min"]).to_numpy(), (rows["max"] - rows["median"]).to_numpy()]
            ax.bar(x, rows["median"].to_numpy(dtype=float), width, yerr=yerr, capsize=2, label=sale,
                   color=SALE_COLORS[i % len(SALE_COLORS)], alpha=0.9)  # fmt: skip
            if refs is not None and column == "rps":
                line = refs[refs["cell_id"].isin(mine["cell_id"])].groupby("strategy")["tps"].median()
                ticks = line.reindex(shown).to_numpy(dtype=float)
                ax.scatter(x, ticks, marker="_", s=400, color="black", linewidths=2, zorder=5,
                           label="reference line" if i == 0 else None)  # fmt: skip
        ax.set_xticks(np.arange(len(shown)), [_strategy_label(s) for s in shown])
        if log:
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", which="major", alpha=0.3)
    key = sorted(zip(*axes[0].get_legend_handles_labels(), strict=True), key=lambda hl: hl[1] not in sales)
    fig.legend(*zip(*key, strict=True), loc="outside lower center", ncol=len(key), fontsize=8, frameon=False)
    fig.suptitle(title, fontweight="bold")
    return fig
