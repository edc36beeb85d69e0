"""`flashsale sweep` and `flashsale report`: the experiment notebooks, run in batch and published as HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashsale import config
from flashsale.cli.output import add_json_flag, emit
from flashsale.cli.placement_options import add_placement_options
from flashsale.units import seconds


def comma_list(kind):
    def parse(text: str) -> list:
        items = [kind(part) for part in text.split(",") if part.strip()]
        if not items:
            raise ValueError("empty list")
        return items

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def positive_vus(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_vus.__name__ = "int"


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run the experiment notebooks (papermill) and export HTML reports",
        description="Measures every cell the sweep's notebooks need (skipping cells already in data/ with the same "
        "parameters), executes the notebooks into reports/runs/, exports HTML without code to reports/, and "
        "writes reports/index.html.",
    )
    sweep.add_argument("--config", type=Path, default=None, help="sweep file (default sweeps/default.yaml)")
    sweep.add_argument("--strategies", type=comma_list(str), help="e.g. pessimistic,atomic")
    sweep.add_argument("--vus", type=comma_list(positive_vus), help="virtual-user levels, e.g. 1,2,4,8")
    sweep.add_argument("--duration", type=seconds, help="measured time per run, e.g. 10s")
    sweep.add_argument("--target", choices=("db", "http"), help="db (in-process) or http (the order service)")
    sweep.add_argument("--repeats", type=positive_vus, help="runs per cell")
    sweep.add_argument(
        "--workers", type=positive_vus, help="load-generating processes per run (default: enough for the machine)"
    )
    sweep.add_argument("--notebooks", type=comma_list(str), help="only these notebooks, e.g. 2.0-concurrency")
    sweep.add_argument(
        "--fresh", action="store_true", help="measure every cell again, also those data/ holds (from any commit)"
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bars")
    add_placement_options(sweep, "db", "service", "client", default=None)
    add_json_flag(sweep)
    sweep.set_defaults(func=cmd_sweep)

    report = subparsers.add_parser(
        "report",
        help="re-render every report from data/ alone, without new load",
    )
    report.add_argument(
        "--notebooks",
        nargs="+",
        metavar="NOTEBOOK",
        help="only the reports of these notebooks (e.g. 2.0-concurrency; default: every one) and the index",
    )
    add_json_flag(report)
    report.set_defaults(func=cmd_report)


def cmd_sweep(args: argparse.Namespace) -> int:
    from flashsale import strategies
    from flashsale.experiments.sweep import DEFAULT_SWEEP, Sweep, measure, render

    for name in args.strategies or []:
        if name not in strategies.STRATEGIES:
            raise strategies.UnknownStrategy(name)
    plan = Sweep.load(args.config or DEFAULT_SWEEP).override(
        strategies=args.strategies,
        vus=args.vus,
        duration_s=args.duration,
        target=args.target,
        repeats=args.repeats,
        workers=args.workers,
        placement=args.placement,
        db_cpus=args.db_cpus,
        service_cpus=args.service_cpus,
        client_cpus=args.client_cpus,
    )
    if args.notebooks:
        wanted = {n.removesuffix(".ipynb") for n in args.notebooks}
        unknown = wanted - {r.notebook for r in plan.runs}
        if unknown:
            raise ValueError(f"not in the sweep file: {', '.join(sorted(unknown))}")
        plan.runs = [r for r in plan.runs if r.notebook in wanted]
    for run in plan.runs:
        for note in run.notes:
            print(f"{run.notebook}: {note}", file=sys.stderr)
    skipped = {run.notebook: str(run.skipped) for run in plan.skip_unplannable()}
    if len(skipped) == len(plan.runs):
        raise ValueError(f"no notebook of the sweep can run with these options ({'; '.join(skipped.values())})")
    for notebook, reason in skipped.items():
        print(f"{notebook}: skipped, since {reason}", file=sys.stderr)
    measure(plan, progress=not args.quiet, fresh=args.fresh)
    pages = render(plan)
    _print_pages(args, pages, skipped=skipped)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from flashsale.experiments.sweep import rerender_all

    _print_pages(args, rerender_all(notebooks=args.notebooks))
    return 0


def _print_pages(args: argparse.Namespace, pages: list[Path], *, skipped: dict[str, str] | None = None) -> None:
    emit(
        args,
        {"reports": [str(p) for p in pages], "skipped": skipped or {}},
        "\n".join(
            f"wrote {p.relative_to(config.PROJ_ROOT) if p.is_relative_to(config.PROJ_ROOT) else p}" for p in pages
        ),
    )
