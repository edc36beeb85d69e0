"""`flashsale locustfile`: the path of the Locust file of the order scenario that ships in the package, so that
plain Locust runs it on any machine where flashsale is installed:

    locust -f $(flashsale locustfile) --worker --master-host HOST

The path is found without importing the file (importing it would import Locust, which patches the standard
library with gevent)."""

from __future__ import annotations

import argparse
from importlib.util import find_spec

from flashsale.cli.output import add_json_flag, emit

LOCUSTFILE_MODULE = "flashsale.load.locust.locustfile"


def register(subparsers) -> None:
    command = subparsers.add_parser(
        "locustfile", help="print the path of the order scenario's Locust file (locust -f $(flashsale locustfile))"
    )
    add_json_flag(command)
    command.set_defaults(func=cmd_locustfile)


def cmd_locustfile(args: argparse.Namespace) -> int:
    spec = find_spec(LOCUSTFILE_MODULE)
    if spec is None or spec.origin is None:
        raise LookupError(f"the module {LOCUSTFILE_MODULE} is not installed")
    path = spec.origin
    emit(args, {"path": path}, path)
    return 0
