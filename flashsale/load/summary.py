"""The end-of-run summary: exact latency percentiles over every measured request and per outcome, as a dict
(the `--json` document), a one-row DataFrame for notebooks, and text in the spirit of k6's end-of-test summary.

Percentiles are exact: computed from every recorded latency, with linear interpolation between the two closest
ranks (numpy's default, which is also how k6 computes its trend percentiles), never from buckets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flashsale.contract import CREATED, is_error

LATENCY_KEYS = ("avg", "min", "p50", "p90", "p95", "p99", "max")
OUTCOME_KEYS = ("count", "avg", "p50", "p95", "p99", "max")
SUMMARY_KEYS = (
    "target",
    "strategy",
    "model",
    "vus",
    "rate",
    "think_ms",
    "duration_s",
    "requests",
    "rps",
    "orders",
    "orders_per_s",
    "latency_ms",
    "outcomes",
    "by_outcome",
    "audit",
    "lock_waiters_mean",
    "workers",
    "engine",
    "client_cpu_percent",
    "client_cpu_percent_by_worker",
    "meta",
)
AUDIT_KEYS = (
    "ok",
    "total",
    "remaining",
    "orders",
    "oversold",
    "limit_violations",
    "acknowledged",
    "acknowledged_missing",
    "unacknowledged",
    "keys",
    "key_violations",
    "pending",
    "failed",
    "accepted",
    "accepted_unsettled",
    "gate_stock",
    "gate_disagreements",
)
CPU_WARNING_PERCENT = 90.0

_PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def latency_stats(latency_ms: np.ndarray, keys: tuple[str, ...] = LATENCY_KEYS) -> dict[str, float | None]:
    """avg/min/max and exact percentiles of `latency_ms`; every value None when there are no latencies."""
    values = np.asarray(latency_ms, dtype=np.float64)
    if values.size == 0:
        return {key: (0 if key == "count" else None) for key in keys}
    wanted = [key for key in keys if key in _PERCENTILES]
    ranks = dict(zip(wanted, np.percentile(values, [_PERCENTILES[k] for k in wanted]), strict=True))
    stats: dict[str, Any] = {
        "count": int(values.size),
        "avg": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        **{key: float(value) for key, value in ranks.items()},
    }
    return {key: stats[key] for key in keys}


def summarize(
    records: pd.DataFrame,
    *,
    target: str,
    strategy: str,
    model: str,
    vus: int | None,
    rate: float | None,
    think_ms: float | None,
    duration_s: float,
    audit: dict[str, Any] | None,
    lock_waiters_mean: float | None,
    client_cpu_percent: float | None,
    client_cpu_percent_by_worker: list[float | None] | None = None,
    workers: int = 1,
    engine: str = "native",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of the requests started after the warmup (`records.warmup` False), over `duration_s`.

    `client_cpu_percent` is the CPU of every load-generating process together (percent of one core);
    `client_cpu_percent_by_worker` each one's, which the saturation warning looks at."""
    measured = records[~records["warmup"]] if "warmup" in records else records
    latency = measured["latency_ms"].to_numpy(dtype=np.float64)
    outcome = measured["outcome"].astype(str).to_numpy()
    names, counts = np.unique(outcome, return_counts=True)
    outcomes = {str(name): int(count) for name, count in sorted(zip(names, counts, strict=True), key=_by_count)}
    by_outcome = {name: latency_stats(latency[outcome == name], OUTCOME_KEYS) for name in outcomes}
    requests = int(latency.size)
    orders = outcomes.get(CREATED, 0)
    meta = dict(meta or {})
    meta.setdefault("errors", {name: count for name, count in outcomes.items() if is_error(name)})
    warnings = list(meta.get("warnings", []))
    by_worker = client_cpu_percent_by_worker or [client_cpu_percent]
    if workers == 1 and by_worker[0] is not None and by_worker[0] > CPU_WARNING_PERCENT:
        warnings.append(
            f"the load runner used {by_worker[0]:.0f}% of a CPU core: the figures measure the client, "
            "not the server (more --workers, fewer VUs, a lower rate, or a second client machine)"
        )
    elif saturated := [(k, cpu) for k, cpu in enumerate(by_worker) if cpu is not None and cpu > CPU_WARNING_PERCENT]:
        which = ", ".join(f"{k} ({cpu:.0f}%)" for k, cpu in saturated)
        warnings.append(
            f"load workers {which} used more than {CPU_WARNING_PERCENT:.0f}% of a CPU core each: the figures "
            "measure the client, not the server (more --workers if the machine has idle cores, or a second client "
            "machine)"
        )
    for fault in meta.get("faults", []):
        if fault.get("error"):
            warnings.append(f"fault {fault['fault']}: {fault['error']}")
        elif fault.get("recovery_s") is None:
            warnings.append(f"fault {fault['fault']}: no request succeeded after it before the run ended")
    if audit is not None and not audit["ok"]:
        warnings.insert(0, "AUDIT FAILED: " + "; ".join(meta.get("audit_problems", [])))
    meta["warnings"] = warnings
    return {
        "target": target,
        "strategy": strategy,
        "model": model,
        "vus": vus,
        "rate": rate,
        "think_ms": think_ms,
        "duration_s": duration_s,
        "requests": requests,
        "rps": requests / duration_s if duration_s > 0 else None,
        "orders": orders,
        "orders_per_s": orders / duration_s if duration_s > 0 else None,
        "latency_ms": latency_stats(latency),
        "outcomes": outcomes,
        "by_outcome": by_outcome,
        "audit": None if audit is None else {key: audit.get(key) for key in AUDIT_KEYS},
        "lock_waiters_mean": lock_waiters_mean,
        "workers": workers,
        "engine": engine,
        "client_cpu_percent": client_cpu_percent,
        "client_cpu_percent_by_worker": list(by_worker) if client_cpu_percent_by_worker else [client_cpu_percent],
        "meta": meta,
    }


def _by_count(item: tuple[Any, Any]) -> tuple[int, str]:
    return (-int(item[1]), str(item[0]))


def cpu_us_per_order(cpu_percent: float | None, orders_per_s: float | None) -> float | None:
    """Client CPU per order in microseconds, from a CPU share (percent of one core) and orders a second; None when
    either is unknown or zero."""
    if not cpu_percent or not orders_per_s:
        return None
    return cpu_percent / 100 / orders_per_s * 1e6


def summary_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """The summary as one row, nested keys joined by dots (`latency_ms.p95`, `by_outcome.created.p95`, ...),
    so that the rows of many runs concatenate into one table."""
    return pd.json_normalize(summary, sep=".")


def render_text(summary: dict[str, Any]) -> str:
    """The summary as a k6-style block of dotted lines."""
    s, meta = summary, summary["meta"]
    lines = [_scenario_line(s), _sale_line(meta), ""]
    lines.append(_row("requests", f"{s['requests']:<8} {_rate(s['rps'])}"))
    settled = (meta.get("async") or {}).get("settled", {})
    later = f"  (+{settled['created']} accepted and settled later)" if settled.get("created") else ""
    lines.append(_row("orders (created)", f"{s['orders']:<8} {_rate(s['orders_per_s'])}{later}"))
    lat = s["latency_ms"]
    lines.append(_row("latency", " ".join(f"{_label(k)}={_ms(lat[k])}" for k in LATENCY_KEYS)))
    for name, stats in s["by_outcome"].items():
        values = " ".join(f"{_label(k)}={_ms(stats[k])}" for k in OUTCOME_KEYS[1:])
        lines.append(_row(f"  {{ {name} }}", f"count={stats['count']:<7} {values}", width=33))
    errors = meta.get("errors", {})
    lines.append(_row("errors", ", ".join(f"{n}={c}" for n, c in errors.items()) if errors else "0"))
    for fault in meta.get("faults", []):
        lines.append(_row(f"fault {fault['fault']}", _fault_text(fault)))
    if (hinted := meta.get("retry_after")) and (hinted["honoured"] or hinted["service_refusals"]):
        lines.append(_row("refusals for now (429, 503)", _retry_after_text(hinted)))
    if s["model"] == "open":
        lines.append(
            _row(
                "starts",
                f"late={meta.get('late_starts', 0)} dropped={meta.get('dropped_starts', 0)} "
                f"(max in flight {meta.get('max_inflight')})",
            )
        )
        if lag := meta.get("send_lag_ms"):
            lines.append(_row("send lag", " ".join(f"{_label(k)}={_ms(lag[k])}" for k in ("p50", "p99", "max"))))
    waiters = s["lock_waiters_mean"]
    lines.append(
        _row(
            "lock waiters",
            "n/a"
            if waiters is None
            else f"{waiters:.2f} mean (Lock:tuple + Lock:transactionid), {meta.get('lock_samples', 0)} samples",
        )
    )
    if (pg := meta.get("pg_transactions")) and pg.get("total") is not None:
        ratio = "-" if pg["per_request"] is None else f"{pg['per_request']:.2f}"
        lines.append(_row("postgresql transactions", f"{pg['total']} ({ratio} per request, warmup included)"))
    if settled := meta.get("async"):
        ends = ", ".join(f"{n}={c}" for n, c in settled["settled"].items()) or "none"
        took = settled["time_to_terminal_ms"]
        lines.append(_row("accepted orders settled", f"{settled['followed']} followed: {ends}"))
        lines.append(
            _row(
                "  time to terminal status",
                " ".join(f"{_label(k)}={_ms(took[k])}" for k in ("avg", "p50", "p95", "p99", "max"))
                + f" ({settled['polls']} status polls every {settled['poll_interval_s']:g} s)",
            )
        )
    if (hold := meta.get("lock_hold_ms")) is not None:
        lines.append(_row("lock hold (client side)", f"{_ms(hold)} mean per order, lock result to commit answer"))
    lines.append(_row("client cpu", _cpu_text(s)))
    if counters := meta.get("strategy_counters"):
        lines.append(_row("strategy counters", ", ".join(f"{k}={v}" for k, v in counters.items())))
    lines.append(_row("audit", _audit_text(s["audit"])))
    for problem in meta.get("audit_problems", []):
        lines.append(f"    !! {problem}")
    for warning in meta.get("warnings", []):
        lines.append(f"  WARNING: {warning}")
    return "\n".join(lines)


def _retry_after_text(hinted: dict[str, Any]) -> str:
    text = f"{hinted['service_refusals']:<8} {_rate(hinted['service_refusals_per_s'])}"
    if not hinted["honoured"]:
        return text + "  (Retry-After not honoured)"
    most = f", at most {hinted['max_s']:g} s each" if hinted.get("max_s") is not None else ""
    return text + f"  (Retry-After honoured: {hinted['waits']} waits, {hinted['waited_s']:.1f} s in all{most})"


def _cpu_text(s: dict[str, Any]) -> str:
    cpu = s["client_cpu_percent"]
    if cpu is None:
        return "n/a"
    workers = s.get("workers") or 1
    if workers == 1:
        return f"{cpu:.0f}% of one core"
    each = ", ".join("-" if c is None else f"{c:.0f}%" for c in s.get("client_cpu_percent_by_worker") or [])
    return f"{cpu:.0f}% of one core over {workers} {s.get('engine', 'native')} workers ({each})"


def _scenario_line(s: dict[str, Any]) -> str:
    meta = s["meta"]
    if s["model"] == "open" and meta.get("stages"):
        shape = "open model, stages " + ",".join(f"{t:g}s:{r:g}" for t, r in meta["stages"]) + " orders/s"
    elif s["model"] == "open" and meta.get("spike"):
        buyers, window = meta["spike"]
        shape = f"open model, spike: {buyers} buyers within {window:g} s"
    elif s["model"] == "open":
        shape = f"open model: {s['rate']:g} orders/s"
    else:
        shape = f"closed model: {s['vus']} VUs, think {s['think_ms']:g} ms"
    warmup = meta.get("warmup_s") or 0
    where = f" at {meta['base_url']}" if meta.get("base_url") else ""
    opens = f", sale opens at {meta['sale_opens_at']}" if meta.get("sale_opens_at") else ""
    return (
        f"  scenario: {shape}{opens}, {s['duration_s']:g} s"
        + (f" (+{warmup:g} s warmup)" if warmup else "")
        + f", target {s['target']}{where}, strategy {s['strategy']}"
    )


def _sale_line(meta: dict[str, Any]) -> str:
    return (
        f"  sale:     {meta.get('users')} users, inventory {meta.get('inventory')}, "
        f"limit {meta.get('per_user_limit')} per user, seed {meta.get('seed')}"
    )


def _audit_text(audit: dict[str, Any] | None) -> str:
    if audit is None:
        return "not run"
    sold = audit["total"] - audit["remaining"]
    verdict = "ok" if audit["ok"] else "FAILED"
    text = (
        f"{verdict}: {audit['orders']} orders, {sold} sold of {audit['total']}, {audit['remaining']} remaining, "
        f"oversold {audit['oversold']}, {audit['limit_violations']} limit violations"
    )
    if audit.get("acknowledged") is not None:
        text += f", {audit['acknowledged']} acknowledged ({audit['acknowledged_missing']} missing)"
    if audit.get("accepted") is not None:
        text += f", {audit['accepted']} accepted ({audit['accepted_unsettled']} unsettled, {audit['pending']} pending)"
    if audit.get("keys") is not None:
        text += f", {audit['keys']} idempotency keys ({audit['key_violations']} without exactly one order)"
    if audit.get("gate_stock") is not None:
        text += f", stock gate {audit['gate_stock']} remaining ({audit['gate_disagreements']} disagreements)"
    return text


def _fault_text(fault: dict[str, Any]) -> str:
    if fault.get("injected_s") is None:
        return f"not injected ({fault.get('error') or 'the run ended first'})"
    server = fault.get("server", "database")  # or Redis
    subject = "the database" if server == "database" else server
    parts = [f"at {fault['injected_s']:.2f} s, {server} down {_seconds(fault['unavailable_s'])}"]
    if fault.get("failures"):
        errors = ", ".join(f"{n}={c}" for n, c in fault["errors"].items())
        latency = fault["failure_latency_ms"]
        parts.append(f"{fault['failures']} failed ({errors}; p99 {_ms(latency['p99'])}, max {_ms(latency['max'])})")
    else:
        parts.append("no request failed")
    if fault.get("recovery_s") is None:
        parts.append("NOT RECOVERED before the end")
    else:
        parts.append(f"recovered in {fault['recovery_s']:.2f} s ({fault['lag_s']:.2f} s after {subject} was up)")
    if fault.get("error"):
        parts.append(f"error: {fault['error']}")
    return "; ".join(parts)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _row(name: str, value: str, width: int = 33) -> str:
    return f"  {name} ".ljust(width, ".") + f": {value}"


def _label(key: str) -> str:
    return {"p50": "med"}.get(key, key if not key.startswith("p") else f"p({key[1:]})")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.2f}ms" if value >= 1 else f"{value * 1000:.0f}µs"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"
