"""The same closed-model scenario over HTTP from the native runner and from Locust's distributed mode, back to back
against one service: throughput, exact p50/p95/p99 of each, Locust's own (bucketed) percentiles, and each
client's CPU per request.

    .venv/bin/flashsale db up
    .venv/bin/python benchmarks/locust_vs_native.py                  # 10 s each, 2 repeats
    .venv/bin/python benchmarks/locust_vs_native.py --vus 32 --think-ms 0 --workers 2 --duration 5s
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.serving.server_process import ServerProcess
from flashsale.units import seconds

NEVER = 100_000_000


def measure(base_url: str, engine: str, args) -> dict:
    result = run_load(
        LoadConfig(
            target="http", base_url=base_url, engine=engine, workers=args.workers,
            shape=Closed(vus=args.vus, think_ms=args.think_ms), duration_s=args.duration, users=1000, inventory=NEVER,
            per_user_limit=NEVER,
        )
    )  # fmt: skip
    s = result.summary
    cpu = s["client_cpu_percent"]
    row = {
        "engine": engine,
        "rps": s["rps"],
        "p50_ms": s["latency_ms"]["p50"],
        "p95_ms": s["latency_ms"]["p95"],
        "p99_ms": s["latency_ms"]["p99"],
        "client_cpu_percent": cpu,
        "cpu_us_per_request": cpu / 100 / s["rps"] * 1e6 if cpu and s["rps"] else None,
        "service_cpu_percent": s["meta"].get("service_cpu_percent"),
        "audit_ok": result.ok,
    }
    if engine == "locust":
        stats = s["meta"]["locust_stats"]
        row["locust_reported"] = {k: stats["percentiles_ms"].get(k) for k in ("50%", "95%", "99%")}
        row["locust_requests"] = stats["requests"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vus", type=int, default=16)
    parser.add_argument("--think-ms", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=seconds, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--strategy", default="pessimistic")
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "locust_vs_native.json"))
    args = parser.parse_args()
    rows = []
    with ServerProcess(strategy=args.strategy, pool_size=8, access_log=False) as server:
        for repeat in range(args.repeat):
            for engine in ("native", "locust") if repeat % 2 == 0 else ("locust", "native"):
                row = {"repeat": repeat, **measure(server.url, engine, args)}
                rows.append(row)
                extra = f"  locust's own {row['locust_reported']}" if engine == "locust" else ""
                print(
                    f"{engine:<7} {row['rps']:>7.0f} req/s  p50 {row['p50_ms']:.2f}  p95 {row['p95_ms']:.2f}  "
                    f"p99 {row['p99_ms']:.2f} ms  client {row['cpu_us_per_request']:.0f} µs/request "
                    f"({row['client_cpu_percent']:.0f}%)  audit {'ok' if row['audit_ok'] else 'FAILED'}{extra}",
                    flush=True,
                )
    summary = {
        engine: {
            key: statistics.median(r[key] for r in rows if r["engine"] == engine)
            for key in ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_us_per_request")
        }
        for engine in ("native", "locust")
    }
    print(json.dumps(summary, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scenario = {k: getattr(args, k) for k in ("vus", "think_ms", "workers", "duration", "strategy")}
    measured = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps({"measured_at": measured, "scenario": scenario, "rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
