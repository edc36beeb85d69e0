"""The seed's load test over HTTP (k6: 10 VUs, 100 ms sleep, user ids from GET /users), with inventory that
does not sell out, against the published figures (data/reference/seed-baselines.json).

The bars: RPS within 3% of the think-time bound `vus / (think + avg latency)`, and p95 at most half the Rust
original's 13.36 ms. The runner starts the service on a free loopback port unless --base-url is given.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.units import seconds

RPS_TOLERANCE = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running service (default: start one)")
    parser.add_argument("--strategy", default="pessimistic")
    parser.add_argument("--vus", type=int, default=10)
    parser.add_argument("--think-ms", type=float, default=100.0)
    parser.add_argument("--duration", type=seconds, default=30.0)
    parser.add_argument("--warmup", type=seconds, default=0.0)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "seed_http.json"))
    args = parser.parse_args()

    reference = json.loads((config.REFERENCE_DIR / "seed-baselines.json").read_text())
    seed = reference["devlog-02-naive-concurrency"]["results"]
    result = run_load(
        LoadConfig(
            target="http",
            base_url=args.base_url,
            strategy=args.strategy,
            shape=Closed(vus=args.vus, think_ms=args.think_ms),
            duration_s=args.duration,
            warmup_s=args.warmup,
            users=100,
            inventory=100_000_000,
            per_user_limit=1_000_000,
        )
    )
    s = result.summary
    lat = s["latency_ms"]
    bound = args.vus / (args.think_ms / 1000 + lat["avg"] / 1000)
    rps_gap = abs(s["rps"] - bound) / bound
    p95_bar = seed["latency_ms"]["p95"] / 2
    print(result.text())
    print()
    print(
        f"think-time bound {bound:.1f} RPS, measured {s['rps']:.1f} ({rps_gap:.1%} off): "
        f"{'ok' if rps_gap <= RPS_TOLERANCE else 'FAILS'} (bar {RPS_TOLERANCE:.0%})"
    )
    print(
        f"p95 {lat['p95']:.2f} ms against the bar {p95_bar:.2f} ms (half the seed's {seed['latency_ms']['p95']} ms): "
        f"{'ok' if lat['p95'] <= p95_bar else 'FAILS'}"
    )
    print(
        f"seed: {seed['rps']} RPS, avg {seed['latency_ms']['avg']} ms, max {seed['latency_ms']['max']} ms; "
        f"here: {s['rps']:.1f} RPS, avg {lat['avg']:.2f} ms, max {lat['max']:.2f} ms"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "bound_rps": bound,
                "rps_gap": rps_gap,
                "p95_bar_ms": p95_bar,
                "summary": s,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
