"""The "Reading it" paragraphs the notebooks end with: what their figures show, in sentences computed from the tidy
tables `run_cells` returns (medians over the repeats), so that a conclusion changes when the data does.

Each function takes a notebook's cells table and returns Markdown; the notebook's last cells display it.
"""

from __future__ import annotations

import pandas as pd

from flashsale.experiments.analysis import (
    admitted_per_user,
    audit_reading,
    concurrency_peaks,
    driver_vs_pgbench,
    fault_reading,
    medians,
    redis_front_parts,
    spread,
)
from flashsale.experiments.plans import GATE

# Past its peak, a strategy whose orders/s stay within this share of the peak is flat: extra users only queue.
FLAT_SHARE = 0.9


def _count(row: pd.Series, column: str) -> float:
    value = row.get(column)
    return 0.0 if value is None or pd.isna(value) else float(value)


def _present(value: object) -> bool:
    return value is not None and bool(pd.notna(value))


def _vus(n: int) -> str:
    return f"{n} VU" if n == 1 else f"{n} VUs"


# --- 2.0: the concurrency sweep ------------------------------------------------------------------------------------


def concurrency_reading(cells: pd.DataFrame, reference: pd.DataFrame | None = None) -> str:
    """Past each peak (the best safe strategy's and `pessimistic`'s), what the extra users bought: orders/s at the
    highest level against the peak, and p95 there against p95 at the peak; then, where pgbench ran, the driver's
    share of its orders/s."""
    peaks = concurrency_peaks(cells).set_index("strategy")
    named = list(dict.fromkeys([*peaks.index[:1], *(["pessimistic"] if "pessimistic" in peaks.index else [])]))
    p95 = spread(cells, ["strategy", "vus"], "latency_ms.p95").set_index(["strategy", "vus"])["median"]
    rate = spread(cells, ["strategy", "vus"], "orders_per_s").set_index(["strategy", "vus"])["median"]
    lines = []
    for name in named:
        peak_vus, top_vus = int(peaks.loc[name, "vus"]), int(cells.loc[cells["strategy"] == name, "vus"].max())
        if peak_vus == top_vus:
            lines.append(
                f"**{name}** still gained orders/s at the highest level measured ({_vus(top_vus)}, "
                f"{peaks.loc[name, 'median']:,.0f} orders/s): this sweep does not reach its ceiling."
            )
            continue
        share = rate[(name, top_vus)] / peaks.loc[name, "median"]
        before, after = p95[(name, peak_vus)], p95[(name, top_vus)]
        what = (
            "the extra users only waited in the queue"
            if share >= FLAT_SHARE
            else "contention cost throughput as well as waiting"
        )
        lines.append(
            f"Past its peak at {_vus(peak_vus)}, **{name}** kept {share:.0%} of its peak orders/s at {_vus(top_vus)} "
            f"while its p95 went from {before:,.2f} to {after:,.2f} ms ({after / before:.1f}x): {what}."
        )
    ratio = driver_vs_pgbench(cells, reference) if reference is not None else pd.DataFrame()
    if not ratio.empty:
        shares = ratio["driver / pgbench"]
        lines.append(
            f"The in-process driver reached {shares.min():.0%} to {shares.max():.0%} of the orders/s of pgbench "
            f"replaying the same SQL ({len(ratio)} strategy and level pairs)."
        )
    return " ".join(lines)


# --- 3.0: lock contention ------------------------------------------------------------------------------------------


def contention_reading(cells: pd.DataFrame, *, vus: int) -> str:
    """At `vus`: the sessions `pessimistic` kept waiting on the row lock, its orders/s and p95, set against the
    fastest safe strategy's."""
    at = cells[cells["vus"] == vus]
    if at.empty:
        return f"No cell was measured at {_vus(vus)}: nothing to read."
    typical = medians(at, by="strategy")
    safe = set(at.loc[at["safe"].astype(bool), "strategy"])
    fastest = typical[typical.index.isin(safe)].sort_values("orders_per_s", ascending=False).index

    def said(name: str) -> str:
        row = typical.loc[name]
        waiting = row.get("lock_waiters_mean")
        waiters = (
            ""
            if not _present(waiting)
            else f"kept {waiting:.1f} sessions waiting on the row lock on average ({waiting / vus:.0%} of its "
            "users) and "
        )
        return f"{waiters}placed {row['orders_per_s']:,.0f} orders/s with p95 {row['latency_ms.p95']:,.2f} ms"

    lines = []
    if "pessimistic" in typical.index:
        lines.append(f"At {_vus(vus)}, **pessimistic** {said('pessimistic')}.")
    top = next((name for name in fastest if name != "pessimistic"), None)
    if top is not None:
        times = (
            f" ({typical.loc[top, 'orders_per_s'] / typical.loc['pessimistic', 'orders_per_s']:.1f}x the orders/s)"
            if "pessimistic" in typical.index
            else ""
        )
        lines.append(f"The fastest safe strategy, **{top}**, {said(top)}{times}.")
    return " ".join(lines)


# --- 5.0: admission control ----------------------------------------------------------------------------------------


def admission_reading(cells: pd.DataFrame) -> str:
    """Per set-up: the share of requests admission control turned away at once (queue full, rate limited), the
    orders placed and how long they took (p95), against the set-up without admission control; then the audit."""
    typical = medians(cells)
    plain = [
        label
        for label, row in typical.iterrows()
        if not _count(row, "param.queue_size") and not _count(row, "param.user_rate")
    ]
    base = typical.loc[plain[0]] if plain else None
    lines = []
    for label, row in typical.iterrows():
        requests = _count(row, "requests")
        full, limited = _count(row, "outcome.queue_full"), _count(row, "outcome.rate_limited")
        turned = (full + limited) / requests if requests else 0.0
        created, waited = _count(row, "outcome.created"), row.get("by_outcome.created.p95")
        placed = "no order placed"
        if created and _present(waited):
            placed = f"{created:,.0f} orders placed, p95 {waited:,.2f} ms"
            before = None if base is None or label == plain[0] else base.get("by_outcome.created.p95")
            if _present(before) and before:
                placed += f" ({waited / before:.2f}x the p95 without admission control)"
        lines.append(
            f"- **{label}**: {turned:.0%} of {requests:,.0f} requests turned away at once ({full:,.0f} queue full, "
            f"{limited:,.0f} rate limited); {placed}."
        )
    return "\n".join([*lines, "", audit_reading(cells, by="label")])


# --- 6.0: asynchronous orders --------------------------------------------------------------------------------------


def async_reading(cells: pd.DataFrame) -> str:
    """Per set-up: the p95 of the answer, the share of orders accepted or placed, and for asynchronous answers the
    p95 of the time to a settled order; each asynchronous set-up's answer set against the synchronous one of the same
    load; then whether every accepted order was settled, every key had one order, and the audit."""
    typical = medians(cells)
    accept = cells.groupby("label", sort=False)["param.accept"].first()
    spike = cells.groupby("label", sort=False)["param.spike"].first().notna()
    lines = []
    for label, row in typical.iterrows():
        requests = _count(row, "requests")
        taken = (_count(row, "outcome.accepted") + _count(row, "outcome.created")) / requests if requests else 0.0
        settled = row.get("meta.async.time_to_terminal_ms.p95")
        then = f", settled {settled:,.0f} ms after sending (p95)" if _present(settled) else ""
        twin = [other for other in typical.index if spike[other] == spike[label] and accept[other] == "sync"]
        versus = ""
        if accept[label] == "async" and twin and row["latency_ms.p95"]:
            ratio = typical.loc[twin[0], "latency_ms.p95"] / row["latency_ms.p95"]
            faster = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            versus = f", {faster} than the synchronous answer"
        lines.append(
            f"- **{label}**: answered within {row['latency_ms.p95']:,.2f} ms (p95){versus}; {taken:.0%} of "
            f"{requests:,.0f} orders accepted or placed{then}."
        )
    unsettled = cells.get("audit.accepted_unsettled", pd.Series(dtype=float)).fillna(0).sum()
    pending = cells.get("audit.pending", pd.Series(dtype=float)).fillna(0).sum()
    duplicated = cells.get("audit.key_violations", pd.Series(dtype=float)).fillna(0).sum()
    ended = (
        "Every accepted order ended in exactly one terminal state"
        if not unsettled and not pending
        else f"**{unsettled:,.0f} accepted order(s) were not settled** ({pending:,.0f} left pending)"
    )
    keys = (
        "every idempotency key had exactly one order"
        if not duplicated
        else f"**{duplicated:,.0f} idempotency key(s) had other than one order**"
    )
    return "\n".join([*lines, "", f"{ended}, and {keys} (all runs). {audit_reading(cells, by='label')}"])


# --- 7.0: Redis in front -----------------------------------------------------------------------------------------


def redis_front_reading(cells: pd.DataFrame) -> str:
    """The three parts of the notebook, a paragraph each: the orders a second each user had admitted against the
    limit, local and shared; the stock gate against the database's designs on each sale (requests/s, p95,
    PostgreSQL transactions per request); each fault; then the audit."""
    parts = redis_front_parts(cells)
    paragraphs = [
        text
        for text in (_admission_said(parts.admission), _gate_said(parts.gate), fault_reading(parts.faulted))
        if text
    ]
    return "\n\n".join([*paragraphs, audit_reading(cells, by="label")])


def _admission_said(cells: pd.DataFrame) -> str:
    if cells.empty:
        return ""
    runs = admitted_per_user(cells)
    lines = []
    for label, group in runs.groupby("label", sort=False):
        first = group.iloc[0]
        admitted, sent = group["admitted"].median(), group["offered"].median()
        lines.append(
            f"- **{label}**: each user had {admitted:,.2f} orders/s admitted, **{admitted / first['limit']:.2f}x** "
            f"the limit of {first['limit']:g} (sending {sent:,.0f} a second)."
        )
    short = runs[runs["offered"] < runs["limit"] * runs["processes"]]
    said = "\n".join(lines)
    if short.empty:
        return f"Admission, with every user sending more orders than the limit times the processes:\n\n{said}"
    return (
        f"Admission:\n\n{said}\n\nIn {len(short)} run(s) the users sent fewer orders than the limit times the "
        "processes: there a per-process limit could not show its multiple, which reads low."
    )


def _gate_said(cells: pd.DataFrame) -> str:
    if cells.empty:
        return ""
    typical = medians(cells)
    strategy = cells.groupby("label", sort=False)["strategy"].first()
    lines = []
    for sale in dict.fromkeys(label.split(", ", 1)[1] for label in typical.index):
        on = typical[[label.endswith(f", {sale}") for label in typical.index]]
        gate = [label for label in on.index if strategy[label] == GATE]
        said = []
        for label, row in on.iterrows():
            pg = row.get("meta.pg_transactions.per_request")
            cost = f", {pg:.3f} PostgreSQL transactions a request" if _present(pg) else ""
            versus = ""
            if gate and label != gate[0] and row["rps"]:
                ratio = on.loc[gate[0], "rps"] / row["rps"]
                versus = (
                    f" (the gate answered {ratio:.1f}x as many)" if ratio >= 1 else f" ({1 / ratio:.1f}x the gate's)"
                )
            said.append(
                f"**{strategy[label]}** {row['rps']:,.0f} requests/s{versus}, p95 {row['latency_ms.p95']:,.2f} ms{cost}"
            )
        lines.append(f"- *{sale}*: " + "; ".join(said) + ".")
    return "The stock gate against the database's designs, in-process (medians of the repeats):\n\n" + "\n".join(lines)
