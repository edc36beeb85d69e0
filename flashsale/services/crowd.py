"""A crowd of buyers hitting one sale at the same moment: the smallest concurrency experiment, used by
`flashsale demo` and by the concurrency tests."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from flashsale.domain import DomainError, Order, PlaceOrder
from flashsale.strategies import OrderStrategy, StrategyUnavailable


@dataclass(frozen=True)
class CrowdResult:
    orders: list[Order]
    outcomes: Counter[str]  # "created", the domain error's code, or "busy" / "rejected"
    elapsed_s: float
    results: list[Order | str]  # what happened to each command, in the order of the commands


def crowd_commands(
    user_ids: list[UUID], flash_sale_id: UUID, *, buyers: int, quantities: tuple[int, ...] = (1,), seed: int = 0
) -> list[PlaceOrder]:
    """`buyers` orders from users drawn round-robin (so several buyers share a user when buyers > users)."""
    rng = random.Random(seed)
    return [
        PlaceOrder(user_id=user_ids[i % len(user_ids)], flash_sale_id=flash_sale_id, quantity=rng.choice(quantities))
        for i in range(buyers)
    ]


async def buy_concurrently(
    pool: AsyncConnectionPool, strategy: OrderStrategy, commands: list[PlaceOrder]
) -> CrowdResult:
    """Start every command at once (released together by a barrier) and collect what happened to each."""
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def buyer(command: PlaceOrder) -> Order | str:
        await gate.wait()
        try:
            return await strategy.place_order(pool, command)
        except (DomainError, StrategyUnavailable) as exc:
            return exc.code

    tasks = [asyncio.create_task(buyer(c)) for c in commands]
    await asyncio.sleep(0)  # let every task reach the gate
    started = loop.time()
    gate.set()
    results = await asyncio.gather(*tasks)
    elapsed = loop.time() - started
    orders = [r for r in results if isinstance(r, Order)]
    outcomes = Counter("created" if isinstance(r, Order) else r for r in results)
    return CrowdResult(orders=orders, outcomes=outcomes, elapsed_s=elapsed, results=list(results))
