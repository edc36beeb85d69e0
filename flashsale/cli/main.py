"""Entry point of the `flashsale` command: builds the parser from each command module and turns every
expected failure into one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import json
import sys

import psycopg

from flashsale.cli import audit, bench, db, demo, kv, load, locustfile, order, serve, strategies, sweep
from flashsale.cli.output import EXIT_DB, EXIT_FAILED, EXIT_USAGE
from flashsale.db.connection import DatabaseUnavailable
from flashsale.domain import DomainError
from flashsale.kv import RedisUnavailable
from flashsale.reports.notebook_runner import NotebookFailed
from flashsale.strategies import StrategyUnavailable


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line ("flashsale db reset: error: ... (see --help)"), not the whole usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="flashsale",
        description="A laboratory for flash-sale inventory concurrency on PostgreSQL.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (db, kv, order, demo, serve, load, bench, strategies, sweep, audit, locustfile):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (DomainError, StrategyUnavailable) as exc:
        return _fail(args, exc.code, str(exc), EXIT_FAILED)
    except NotebookFailed as exc:
        return _fail(args, "notebook_failed", str(exc), EXIT_FAILED)
    except DatabaseUnavailable as exc:
        return _fail(args, "database_unavailable", str(exc), EXIT_DB)
    except psycopg.OperationalError as exc:
        return _fail(args, "database_unavailable", _first_line(exc), EXIT_DB)
    except RedisUnavailable as exc:
        return _fail(args, "redis_unavailable", str(exc), EXIT_DB)
    except (ValueError, LookupError) as exc:
        return _fail(args, "invalid_input", str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", "interrupted", 130)


def _fail(args: argparse.Namespace, code: str, message: str, status: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}))
    print(f"flashsale: error: {message}", file=sys.stderr)
    return status


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


if __name__ == "__main__":
    sys.exit(main())
