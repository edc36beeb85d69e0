"""The CPU placement options every measuring command shares (`--placement`, `--db-cpus`, `--service-cpus`,
`--client-cpus`), and the `Placement` they give."""

from __future__ import annotations

import argparse

from flashsale.placement import NAMED, Placement

_HELP = {
    "db": "CPUs of the embedded PostgreSQL: its postmaster and every backend, also after a restart (a CPU list as "
    "taskset -c takes it, e.g. 0 or 0-2,4; a server the project did not start cannot be placed)",
    "service": "CPUs of the order service (default: the database's)",
    "client": "CPUs of the client: the load runner, its load processes, Locust and pgbench",
}


def add_placement_options(
    parser: argparse.ArgumentParser, *parts: str, named: bool = True, default: str | None = "free"
) -> None:
    """`--PART-cpus` for each of `parts` ("db", "service", "client"), and `--placement NAME` (by default `default`)
    unless `named` is False."""
    group = parser.add_argument_group("CPU placement (Linux)")
    if named:
        group.add_argument(
            "--placement",
            choices=NAMED,
            default=default,
            help="free: every part runs anywhere; split: the database and the service on the first CPUs, "
            "the client on the last quarter (at least one): on 2 cores, 0 and 1. --*-cpus options override it "
            + (f"(default {default})" if default else "(default: the sweep file's)"),
        )
    for part in parts:
        group.add_argument(f"--{part}-cpus", metavar="CPUS", help=_HELP[part])


def placement_from(args: argparse.Namespace) -> Placement:
    """The placement the options ask for: the named one, with each part given explicitly replacing its set."""
    return Placement.resolve(
        getattr(args, "placement", None),
        **{part: getattr(args, f"{part}_cpus", None) for part in ("db", "service", "client")},
    )
