"""Placing an order at most once per idempotency key, with any strategy: what the service and the load runner
call instead of `strategy.place_order` (the promise of Stripe's and the IETF draft's `Idempotency-Key`).

The idempotency policy is written here, once: `POLICY` is what a caller is promised (the OpenAPI document quotes it;
the README, the HTTP service and the CLI refer to it), and the notes below say how it is kept.

    placed = await idempotency.place_order(strategy, pool, PlaceOrder(user, sale, 1, idempotency_key="k-1"))
    placed.order, placed.replayed

- The key is stored on the order, by the strategy's own INSERT, under a unique constraint: an order and its key
  commit together or not at all, and a second order for a key cannot commit.
- A command whose key already has an order is answered with that order (`replayed`), without placing anything;
  the same happens when retries race each other: the losers' transactions fail on the constraint (or are refused,
  or find the key taken) and roll back, stock included, and are answered with the winner's order.
- A command refused by the sale's rules (sold out, limit, ...) or not carried out (database unavailable) stores
  nothing, so sending it again with the same key runs it again against the sale as it is then; since it created
  nothing, that can never create a second order. (Stripe also saves error answers; here there is nothing to save:
  a refusal leaves no trace.)
- A strategy that `replays_keys` (the stock gate) answers a key that has an order itself, before any rule, by
  raising `IdempotencyKeyTaken`: the key is then not looked up in the database first, nor after a refusal (which
  the strategy gave knowing that no request with the key had won), so that refusals never reach the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

from flashsale.domain import DomainError, IdempotencyKeyReused, IdempotencyKeyTaken, Order, PlaceOrder
from flashsale.repositories import orders
from flashsale.strategies import OrderStrategy, StrategyUnavailable

POLICY = (
    "The order is placed at most once for the key: sending the same request again is answered with the order placed "
    "the first time, even while the first is still running, and places nothing; the same key with another user, "
    "sale or quantity is refused (`idempotency_key_reused`). A key is kept with the order it created; a request "
    "refused or not carried out keeps nothing, so it may be sent again with its key. Keys never expire."
)


@dataclass(frozen=True)
class Placement:
    order: Order
    replayed: bool  # True: the order was placed earlier with the same key, nothing was placed now


async def place_order(strategy: OrderStrategy, pool: AsyncConnectionPool, command: PlaceOrder) -> Placement:
    """`strategy.place_order(pool, command)`, at most once per `command.idempotency_key` (if it has one)."""
    key = command.idempotency_key
    if key is None:
        return Placement(await strategy.place_order(pool, command), replayed=False)

    async def find() -> Order | None:
        async with pool.connection() as conn:
            return await orders.get_by_idempotency_key(conn, key)

    return await at_most_once(command, find, lambda: strategy.place_order(pool, command), replays=_replays(strategy))


async def create_order(strategy: OrderStrategy, conn: AsyncConnection, command: PlaceOrder) -> Placement:
    """`strategy.create_order(conn, command)` on one connection, at most once per key (as `place_order`)."""
    key = command.idempotency_key
    if key is None:
        return Placement(await strategy.create_order(conn, command), replayed=False)
    return await at_most_once(
        command,
        lambda: orders.get_by_idempotency_key(conn, key),
        lambda: strategy.create_order(conn, command),
        replays=_replays(strategy),
    )


async def at_most_once(
    command: PlaceOrder,
    find: Callable[[], Awaitable[Order | None]],
    place: Callable[[], Awaitable[Order]],
    *,
    replays: bool = False,
) -> Placement:
    """The order `find` reads for the command's key (replayed), else the one `place` makes, else, when placing
    failed because a racing request with the same key won, that request's order: the policy above, for any way of
    placing an order under the key (a strategy's transaction, or `flashsale.services.settlement`'s PENDING insert).
    `replays`: `place` answers a key that has an order itself (see `OrderStrategy.replays_keys`)."""
    if not replays and (earlier := await find()) is not None:
        return Placement(_answering(command, earlier), replayed=True)
    try:
        return Placement(await place(), replayed=False)
    except (DomainError, StrategyUnavailable, IdempotencyKeyTaken, errors.UniqueViolation) as exc:
        # A refusal, a retry given up or a broken constraint may be the trace of a racing request with the same
        # key that won: then this one is answered with its order.
        if isinstance(exc, errors.UniqueViolation) and exc.diag.constraint_name != orders.IDEMPOTENCY_KEY_CONSTRAINT:
            raise
        if replays and isinstance(exc, DomainError | StrategyUnavailable):
            raise
        earlier = await find()
        if earlier is None:
            if isinstance(exc, IdempotencyKeyTaken | errors.UniqueViolation):  # pragma: no cover - keys are never freed
                raise RuntimeError(f"idempotency key {command.idempotency_key!r} is taken but has no order") from exc
            raise
        return Placement(_answering(command, earlier), replayed=True)


def _replays(strategy: OrderStrategy) -> bool:
    return bool(getattr(strategy, "replays_keys", False))  # wrappers (tests, admission) need not say


def _answering(command: PlaceOrder, earlier: Order) -> Order:
    if not command.same_request(earlier):
        raise IdempotencyKeyReused(str(command.idempotency_key))
    return earlier
