"""How commands print (human text by default, one JSON document with --json) and the exit statuses they end with."""

from __future__ import annotations

import json
import sys
from typing import Any

# Exit statuses: 1 for a refused or failed operation, 2 for bad usage (as argparse), 3 for a server it needs that is
# not there: an unreachable database, or no usable Redis (unreachable, too old, no embedded server for this platform).
EXIT_FAILED, EXIT_USAGE, EXIT_DB = 1, 2, 3


def emit(args, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def add_json_command(commands, name: str, func, help: str):
    """A subcommand `name` (with --json) that runs `func(args)`; returns its parser, for more arguments."""
    parser = commands.add_parser(name, help=help)
    add_json_flag(parser)
    parser.set_defaults(func=func)
    return parser
