"""`flashsale audit --sale ID`: the audit every load run ends with, on any sale at any time; for instance after a
Locust run from several machines, which no single process saw whole. It checks what the database alone can show:
nothing oversold, the inventory row agrees with the confirmed orders, no user above the per-user limit (the ids
acknowledged to clients are only known to the runs that received them). With `--gate`, also that the sale's stock
gate in Redis (`redis_gate`) holds what the database holds. Exit status 1 when the audit fails."""

from __future__ import annotations

import argparse
import sys

from flashsale import aio, stock_gate
from flashsale.cli.order import uuid_arg
from flashsale.cli.output import EXIT_FAILED, add_json_flag, emit
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.services.audit import Audit, audit_sale


def register(subparsers) -> None:
    audit = subparsers.add_parser(
        "audit", help="audit a sale: nothing oversold, inventory row and orders agree, no user over the limit"
    )
    audit.add_argument("--sale", type=uuid_arg, required=True, help="flash sale id (printed by `flashsale db reset`)")
    audit.add_argument(
        "--gate", action="store_true", help="also compare the sale's stock gate in Redis (redis_gate) with the database"
    )
    add_json_flag(audit)
    audit.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    url = ready_url()

    async def go() -> tuple[Audit, bool]:
        gate = await stock_gate.read_view(args.sale) if args.gate else None
        conn = await connection.connect_async(url)
        async with conn:
            return await audit_sale(conn, args.sale, gate=gate), gate is not None

    found, gated = aio.run(go())
    problems = found.problems()
    verdict = "ok" if found.ok else "FAILED: " + "; ".join(problems)
    if args.gate:
        verdict += " (stock gate compared)" if gated else " (the sale has no stock gate in Redis to compare)"
    emit(
        args,
        {"flash_sale_id": args.sale, **found.as_json(), "problems": problems},
        f"sale {args.sale}: {found.orders} orders, {found.confirmed_quantity} of {found.total} units sold, "
        f"{found.remaining} left: {verdict}",
    )
    if found.ok:
        return 0
    print(f"flashsale: error: the audit of sale {args.sale} failed: {'; '.join(problems)}", file=sys.stderr)
    return EXIT_FAILED
