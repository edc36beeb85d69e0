"""`flashsale strategies`: the locking strategies, each with the paragraph that says how it works and what it
costs."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from flashsale import strategies
from flashsale.cli.output import add_json_flag, emit


def register(subparsers) -> None:
    listing = subparsers.add_parser("strategies", help="list the locking strategies and how each one works")
    add_json_flag(listing)
    listing.set_defaults(func=cmd_strategies)


def cmd_strategies(args: argparse.Namespace) -> int:
    catalogue: list[dict[str, Any]] = [
        {"name": cls.name, "safe": cls.safe, "summary": cls.summary} for cls in strategies.STRATEGIES.values()
    ]
    blocks = [
        f"{entry['name']}{'' if entry['safe'] else '  (UNSAFE: oversells, for demonstration only)'}\n"
        + textwrap.fill(
            entry["summary"], width=100, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False
        )
        for entry in catalogue
    ]
    emit(args, catalogue, "\n\n".join(blocks))
    return 0
