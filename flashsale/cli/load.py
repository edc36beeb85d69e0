"""`flashsale load`: a load test against the order logic (`--target db`) or the HTTP service (`--target http`),
with the oversell audit after the run (exit status 1 when it fails)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import TYPE_CHECKING, Any

from flashsale import strategies
from flashsale.cli.output import add_json_flag, emit
from flashsale.cli.placement_options import add_placement_options, placement_from
from flashsale.http.settings import ServiceSettings
from flashsale.units import positive_int, seconds

if TYPE_CHECKING:
    from flashsale.load.shapes import Shape


def fail(args: argparse.Namespace, code: str, message: str, status: int = 1) -> int:
    """A failure of the run itself (not of the input) as main() reports errors: one line, and JSON with --json."""
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}))
    print(f"flashsale: error: {message}", file=sys.stderr)
    return status


def uuid_arg(text: str) -> uuid.UUID:
    return uuid.UUID(text)


uuid_arg.__name__ = "UUID"


def stages_arg(text: str) -> tuple[tuple[float, float], ...]:
    points = []
    for part in text.split(","):
        at, _, rate = part.partition(":")
        points.append((seconds(at), float(rate)))
    return tuple(points)


stages_arg.__name__ = "stages (TIME:RATE,...)"


def spike_arg(text: str) -> tuple[int, float]:
    buyers, _, window = text.partition(":")
    return int(buyers), seconds(window)


spike_arg.__name__ = "spike (N:T)"


def shape_from(args: argparse.Namespace) -> Shape:
    """The load's shape the options give: the closed model (--vus, --think-ms, --think-jitter) unless one of the
    open model's shapes is given (--rate, --stages or --spike, with --max-inflight)."""
    from flashsale.load.shapes import Closed, Open, Ramping, Spike

    shapes = ("--rate", "--stages", "--spike")  # each selects a shape of the open model
    opened = [option for option in shapes if getattr(args, option.removeprefix("--")) is not None]
    if len(opened) > 1:
        one_of = ", ".join(shapes[:-1]) + f" and {shapes[-1]}"
        raise ValueError(f"give one of {one_of} (each selects the open model), not {' and '.join(opened)}")
    if opened and args.think_jitter:
        raise ValueError("think jitter is for the closed model (--vus, --think-ms), not an arrival rate")
    if args.rate is not None:
        return Open(rate=args.rate, max_inflight=args.max_inflight)
    if args.stages is not None:
        return Ramping(stages=args.stages, max_inflight=args.max_inflight)
    if args.spike is not None:
        buyers, window_s = args.spike
        return Spike(buyers=buyers, window_s=window_s, max_inflight=args.max_inflight)
    return Closed(vus=args.vus, think_ms=args.think_ms, think_jitter=args.think_jitter)


def _default_duration(shape: Shape, warmup_s: float) -> float:
    """30 s, or what the shape spans (less the warmup)."""
    return 30.0 if shape.span_s is None else max(shape.span_s - warmup_s, 0.001)


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenario options `load` and `bench` share."""
    parser.add_argument(
        "--strategy", default=strategies.DEFAULT_STRATEGY, choices=strategies.names(), help="locking strategy"
    )
    parser.add_argument("--users", type=positive_int, default=100, help="users in the fresh scenario (default 100)")
    parser.add_argument("--inventory", type=int, default=50, help="units for sale (default 50)")
    parser.add_argument("--per-user-limit", type=positive_int, default=1, help="units one user may buy (default 1)")
    parser.add_argument("--shards", type=positive_int, help="inventory shards, for strategies that shard the row")
    parser.add_argument("--quantity", type=positive_int, default=1, help="units per order (default 1)")
    parser.add_argument(
        "--no-reset", dest="reset", action="store_false", help="keep the database as it is: load the newest sale"
    )
    parser.add_argument("--sale", type=uuid_arg, help="with --no-reset: the flash sale to load (default the newest)")


# The `LoadConfig` fields the options of `add_scenario_arguments` set, under the same names (and `--sale`: sale_id).
_SCENARIO_FIELDS = ("strategy", "users", "inventory", "per_user_limit", "shards", "quantity", "reset")


def scenario_from(args: argparse.Namespace) -> dict[str, Any]:
    """The `LoadConfig` fields the options of `add_scenario_arguments` give."""
    return {**{name: getattr(args, name) for name in _SCENARIO_FIELDS}, "sale_id": args.sale}


def register(subparsers) -> None:
    load = subparsers.add_parser(
        "load",
        help="load test the order flow, then audit for overselling",
        description="Closed model (--vus, --think-ms) unless --rate, --stages or --spike is given (open model). "
        "A fresh scenario is created first unless --no-reset. Exit status 1 when the audit finds an oversell "
        "or an acknowledged order missing, or an idempotency key without exactly its one order.",
    )
    load.add_argument("--target", choices=("db", "http"), default="db", help="db: in-process; http: the service")
    load.add_argument("--base-url", help="http target: a running service (default: start one on a free port)")
    add_scenario_arguments(load)
    load.add_argument("--vus", type=positive_int, default=10, help="closed model: virtual users (default 10)")
    load.add_argument(
        "--think-ms", type=float, default=100.0, help="closed model: pause after each order, ms (default 100)"
    )
    load.add_argument(
        "--think-jitter",
        type=float,
        default=0.0,
        help="closed model: each pause drawn uniformly within --think-ms x (1 -/+ this), e.g. 0.5 (default 0: every "
        "pause exact, so users that start together stay in step)",
    )
    load.add_argument("--rate", type=float, help="open model: orders per second on a fixed schedule")
    load.add_argument(
        "--stages",
        type=stages_arg,
        help="open model, ramping (k6's ramping-arrival-rate): TIME:RATE points, linear between, e.g. "
        "0s:0,2s:2000,12s:2000 (the duration defaults to the last point)",
    )
    load.add_argument(
        "--spike",
        type=spike_arg,
        help="open model, a sale's opening: N:T, N buyers arriving at random within T, one order each "
        "(needs --users N or more; the duration defaults to T)",
    )
    load.add_argument(
        "--sale-opens-at",
        type=seconds,
        help="open the sale this long into the run (orders before are refused sale_not_active), e.g. 500ms",
    )
    load.add_argument("--max-inflight", type=positive_int, default=1000, help="open model: bound on requests in flight")
    load.add_argument("--duration", type=seconds, help="measured time (default 30s, or the end of --stages/--spike)")
    load.add_argument("--warmup", type=seconds, default=0.0, help="run first, left out of the figures (default 0s)")
    load.add_argument("--seed", type=int, default=0, help="seed of the random choice of users (default 0)")
    load.add_argument(
        "--pool-size", type=positive_int, help="database connections (default: --vus; 32 in the open model)"
    )
    load.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="stop an embedded server during the run: PostgreSQL with db-restart@10s (start again at once) or "
        "db-stop@10s:3s (down for 3 s); Valkey with redis-kill@10s:3s (SIGKILL, back empty after 3 s; at once "
        "without :3s) or redis-restart@10s (SIGTERM, back empty at once); repeatable",
    )
    load.add_argument(
        "--request-timeout", type=seconds, default=10.0, help="http target: give a request up after (default 10s)"
    )
    load.add_argument(
        "--pool-timeout",
        type=seconds,
        help="wait for a pooled connection at most this long (default 30s for db; the service's own for http)",
    )
    load.add_argument(
        "--idempotency-keys", action="store_true", help="send every order with an idempotency key (no retries)"
    )
    load.add_argument(
        "--retry-rate",
        type=float,
        default=0.0,
        help="share of requests that resend a recent idempotency key with the same body, e.g. 0.2 (implies keys)",
    )
    load.add_argument(
        "--retry-pool", type=positive_int, default=50, help="how many recent keys retries choose from (default 50)"
    )
    load.add_argument(
        "--workers",
        type=positive_int,
        help="load-generating processes, each with its own event loop and connections (default: enough for this "
        "machine and load; see the README)",
    )
    load.add_argument(
        "--engine",
        choices=("native", "locust"),
        default="native",
        help="native: flashsale's own runner; locust: Locust's distributed mode, a master and --workers workers "
        "(http target)",
    )
    service = load.add_argument_group(
        "the started service (--target http without --base-url; its strategy and pool are the run's)"
    )
    ServiceSettings.add_arguments(service, for_load=True)
    load.add_argument(
        "--poll-interval",
        type=seconds,
        default=1.0,
        help="an order answered 202 is followed at its status URL this often (default 1s)",
    )
    load.add_argument(
        "--poll-max", type=seconds, default=30.0, help="... until settled, or gave_up after this long (default 30s)"
    )
    load.add_argument("--out", help="save the per-request records as Parquet (and the lock timeline beside them)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    add_placement_options(load, "db", "service", "client")
    add_json_flag(load)
    load.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    from flashsale.load import LoadConfig, run_load
    from flashsale.processes import ChildFailed

    placement = placement_from(args)
    shape = shape_from(args)
    config = LoadConfig(
        target=args.target,
        base_url=args.base_url,
        **scenario_from(args),
        shape=shape,
        sale_opens_s=args.sale_opens_at,
        duration_s=args.duration if args.duration is not None else _default_duration(shape, args.warmup),
        warmup_s=args.warmup,
        seed=args.seed,
        pool_size=args.pool_size,
        faults=tuple(args.fault),
        request_timeout_s=args.request_timeout,
        pool_timeout_s=args.pool_timeout,
        idempotency_keys=args.idempotency_keys,
        retry_rate=args.retry_rate,
        retry_pool=args.retry_pool,
        workers=args.workers,
        engine=args.engine,
        service=ServiceSettings.from_args(args, for_load=True),
        poll_interval_s=args.poll_interval,
        poll_max_s=args.poll_max,
        progress=not args.quiet and sys.stderr.isatty(),
        db_cpus=placement.db,
        service_cpus=placement.service,
        client_cpus=placement.client,
    )
    try:
        result = run_load(config)
    except ChildFailed as exc:  # the service it started, or its load generators
        return fail(args, "service_failed" if exc.role == "service" else "load_workers_failed", str(exc))
    if args.out:
        records, locks = result.to_parquet(args.out)
        result.summary["meta"]["records_path"] = str(records)
        result.summary["meta"]["lock_timeline_path"] = str(locks)
    text = result.text() + (f"\n  records saved to {args.out}" if args.out else "")
    emit(args, result.summary, text)
    if not result.ok:
        print(
            "flashsale: error: the audit failed: " + "; ".join(result.summary["meta"]["audit_problems"]),
            file=sys.stderr,
        )
        return 1
    return 0
