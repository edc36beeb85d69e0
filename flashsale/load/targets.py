"""What the load is aimed at: the order logic in-process over a pool (`db`), or a running order service (`http`).

A target turns every answer into an `(outcome id, HTTP status)` pair (status 0 for `db`); errors become outcomes
named by their class, so one failing request never stops the run. Each target also keeps the id of every order it
was told was created (`acknowledged`, 16 bytes an order), for the audit: an acknowledged order must exist.

With `retries` (a `KeyedRetries`), every request carries an idempotency key, some resend an earlier one, and a
201 for a key placed earlier is the outcome `replayed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from typing import ClassVar, Protocol
from uuid import UUID

from psycopg import AsyncConnection, pq
from psycopg_pool import AsyncConnectionPool

from flashsale import contract
from flashsale.contract import ACCEPTED, CREATED, GAVE_UP, OUTCOME_BY_CODE, REPLAYED, UNAVAILABLE
from flashsale.db.guard import DatabaseDown, DatabaseGuard
from flashsale.domain import DomainError, PlaceOrder
from flashsale.load.http_client import HttpClient
from flashsale.load.merge import Answers
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.retries import KeyedRetries
from flashsale.load.workloads import OrderFn, shared
from flashsale.services import idempotency
from flashsale.strategies import OrderStrategy, StrategyUnavailable


class Target(Answers, Protocol):
    """What a load worker drives: the users it orders for, one order for a user (its outcome id and HTTP status),
    a session per virtual user, and what it keeps of the answers (`merge.Answers`: the ids of the orders it was told
    were created, its idempotency keys, the follow-ups of orders answered 202)."""

    name: ClassVar[str]

    @property
    def users(self) -> int: ...

    async def order(self, user: int) -> tuple[int, int]: ...

    def session(self) -> contextlib.AbstractAsyncContextManager[OrderFn]: ...


class _Target:
    name: ClassVar[str]

    def __init__(self, outcomes: Outcomes, retries: KeyedRetries | None = None) -> None:
        self.outcomes = outcomes
        self.retries = retries
        self.acknowledged = bytearray()  # ids of the orders this target saw created (or replayed), 16 bytes each
        # Asynchronous orders (the http target): the ids answered 202, 16 bytes each, one record an accepted order
        # followed to its end, and the status requests sent.
        self.accepted = bytearray()
        self.settlements = RecordBuffer()
        self.polls = 0
        self._error_ids: dict[type, tuple[int, int]] = {}

    def _failed(self, exc: BaseException, status: int = 0) -> tuple[int, int]:
        kind = type(exc)
        found = self._error_ids.get(kind)
        if found is None:
            found = self._error_ids[kind] = (self.outcomes.id(kind.__name__), status)
        return found


class DbTarget(_Target):
    """The strategy called in-process, as the service would call it, minus HTTP.

    Strategies that keep the default `place_order` (take a pooled connection, run `create_order` on it) get one
    connection pinned to each virtual user for the whole run when the pool has one for every VU: the same work
    without the pool's check-out and return on every request (tens of microseconds of client CPU each), as
    pgbench keeps one connection a client. Strategies with their own `place_order` (queues, batches) and the
    open model go through the pool on every request.

    With a `guard`, calls are refused at once (`unavailable`) while the database is lost, as the service does; a
    virtual user whose pinned connection broke carries on through the pool.
    """

    name = "db"

    def __init__(
        self,
        strategy: OrderStrategy,
        pool: AsyncConnectionPool,
        flash_sale_id: UUID,
        user_ids: list[UUID],
        *,
        outcomes: Outcomes,
        quantity: int = 1,
        pin_connections: bool = True,
        guard: DatabaseGuard | None = None,
        retries: KeyedRetries | None = None,
    ) -> None:
        super().__init__(outcomes, retries)
        self.strategy = strategy
        self.pool = pool
        self.guard = guard
        self.user_ids = user_ids
        self._commands = [PlaceOrder(user_id=u, flash_sale_id=flash_sale_id, quantity=quantity) for u in user_ids]
        self._created = (outcomes.id(CREATED), 0)
        self._replayed = (outcomes.id(REPLAYED), 0)
        self._unavailable = (outcomes.id(UNAVAILABLE), 0)
        self._refusals = {code: (outcomes.for_code(code), 0) for code in OUTCOME_BY_CODE}
        default_flow = type(strategy).place_order is OrderStrategy.place_order
        self.pinned = pin_connections and default_flow

    @property
    def users(self) -> int:
        return len(self._commands)

    def _refused(self, code: str) -> tuple[int, int]:
        found = self._refusals.get(code)
        if found is None:
            found = self._refusals[code] = (self.outcomes.for_code(code), 0)
        return found

    async def order(self, user: int) -> tuple[int, int]:
        """One order through `strategy.place_order` on the pool."""
        if self.retries is not None:
            return await self._keyed_order(user)
        guard = self.guard
        try:
            if guard is not None:
                guard.check()
            order = await self.strategy.place_order(self.pool, self._commands[user])
        except Exception as exc:
            return await self._not_placed(exc)
        self.acknowledged += order.id.bytes
        return self._created

    async def _keyed_order(
        self, user: int, conn: AsyncConnection | None = None, held: list[AsyncConnection | None] | None = None
    ) -> tuple[int, int]:
        """One order with an idempotency key (perhaps a retry of an earlier one), on the pinned `conn` or the pool."""
        retries = self.retries
        assert retries is not None, "keyed orders need the run's KeyedRetries"
        number, user = retries.next(user)
        base = self._commands[user]
        command = PlaceOrder(base.user_id, base.flash_sale_id, base.quantity, idempotency_key=retries.key(number))
        guard = self.guard
        try:
            if conn is None:
                if guard is not None:
                    guard.check()
                placed = await idempotency.place_order(self.strategy, self.pool, command)
            else:
                placed = await idempotency.create_order(self.strategy, conn, command)
        except Exception as exc:
            return await self._not_placed(exc, conn, held)
        order_id = placed.order.id.bytes
        self.acknowledged += order_id
        retries.answered(number, order_id)
        return self._replayed if placed.replayed else self._created

    def session(self) -> contextlib.AbstractAsyncContextManager[OrderFn]:
        return self._pinned_session() if self.pinned else shared(self.order)

    @contextlib.asynccontextmanager
    async def _pinned_session(self) -> AsyncIterator[OrderFn]:
        held: list[AsyncConnection | None] = [await self.pool.getconn()]
        create, commands, created, acknowledged = (
            self.strategy.create_order,
            self._commands,
            self._created,
            self.acknowledged,
        )

        async def order(user: int) -> tuple[int, int]:
            conn = held[0]
            if conn is None:  # the pinned connection broke: carry on through the pool
                return await self.order(user)
            if self.retries is not None:
                return await self._keyed_order(user, conn, held)
            try:
                placed = await create(conn, commands[user])
            except Exception as exc:
                return await self._not_placed(exc, conn, held)
            acknowledged.extend(placed.id.bytes)
            return created

        try:
            yield order
        finally:
            if held[0] is not None:
                await self.pool.putconn(held[0])

    async def _not_placed(
        self, exc: Exception, conn: AsyncConnection | None = None, held: list[AsyncConnection | None] | None = None
    ) -> tuple[int, int]:
        """The outcome of an order that raised `exc`: a refusal by the sale or the strategy, `unavailable` when the
        guard refused it, or else an error named by its class, once the guard has seen it and a pinned `conn` has
        been recovered (rolled back, or given up to the pool when broken)."""
        if isinstance(exc, DomainError | StrategyUnavailable):
            return self._refused(exc.code)
        if isinstance(exc, DatabaseDown):
            return self._unavailable
        if self.guard is not None:
            self.guard.observe(exc)
        if conn is not None and held is not None:
            await self._recover(held, conn)
        return self._failed(exc)

    async def _recover(self, held: list[AsyncConnection | None], conn: AsyncConnection) -> None:
        if conn.closed or conn.broken:
            held[0] = None
            await self.pool.putconn(conn)  # the pool discards it and opens a replacement
        elif conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(Exception):
                await conn.rollback()


class HttpTarget(_Target):
    """The order service over HTTP: `POST {base_url}/api/orders`, as the seed's k6 script did.

    `open()` is the setup phase: it reads the real user ids from `GET /api/users` (every page) and prepares each
    user's request once, as the bytes to send (`flashsale.load.http_client`), so the hot path only writes them
    and parses the answer. Every request gives up after `timeout_s` (outcome `TimeoutError`), so a stalled
    service cannot stall the run.

    Asynchronous orders (`serve --accept async`): a 202 is the outcome `accepted`, and the order is then followed
    at `GET /orders/{id}/status` every `poll_interval_s` until it is settled or `poll_max_s` has passed since it was
    sent. Each follow-up ends in `settlements` (one record an accepted order: the time from sending the order to
    seeing its terminal status, and `created`, the refusal's code, `gave_up` or an error class). In the closed
    model a virtual user waits for its order's settlement before its next order (as the FlashDeal k6 script
    polls); in the open model the follow-ups run beside the schedule.

    With `honour_retry_after` (closed model), a virtual user whose answer carries a `Retry-After` hint (the
    service's 429 and 503 refusals) pauses that long, at most `retry_after_max_s`, before its next order.
    """

    name = "http"

    def __init__(
        self,
        base_url: str,
        flash_sale_id: UUID,
        *,
        outcomes: Outcomes,
        quantity: int = 1,
        timeout_s: float = 10.0,
        retries: KeyedRetries | None = None,
        poll_interval_s: float = 1.0,
        poll_max_s: float = 30.0,
        honour_retry_after: bool = False,
        retry_after_max_s: float | None = None,
    ) -> None:
        super().__init__(outcomes, retries)
        self.base_url = base_url.rstrip("/")
        self.honour_retry_after = honour_retry_after
        self.retry_after_max_s = math.inf if retry_after_max_s is None else retry_after_max_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_ns = round(poll_max_s * 1e9)
        self.origin_ns = 0  # the run's origin, for the settlements' start offsets (set before the run)
        self._following: set[asyncio.Task] = set()
        self.flash_sale_id = flash_sale_id
        self.quantity = quantity
        self.timeout_s = timeout_s
        self.user_ids: list[str] = []
        self._bodies: list[bytes] = []
        self._requests: list[bytes] = []
        self._client: HttpClient | None = None
        self._answers: dict[tuple[int, str | None], tuple[int, int]] = {}
        self._created = (outcomes.id(CREATED), 201)
        self._replayed = (outcomes.id(REPLAYED), 201)
        self._accepted = (outcomes.id(ACCEPTED), 202)

    @property
    def users(self) -> int:
        return len(self._bodies)

    async def open(self) -> None:
        self.user_ids = await asyncio.to_thread(contract.fetch_user_ids, self.base_url, timeout_s=self.timeout_s)
        if not self.user_ids:
            raise LookupError(f"GET {self.base_url}{contract.USER_IDS_PATH} returned no users")
        sale = str(self.flash_sale_id)
        self._bodies = [contract.order_body(u, sale, self.quantity) for u in self.user_ids]
        self._client = HttpClient(self.base_url, timeout_s=self.timeout_s)
        self._requests = [self._client.prepare("POST", contract.ORDERS_PATH, body) for body in self._bodies]

    async def close(self) -> None:
        await self.settle()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def settle(self) -> None:
        """Wait for every follow-up of an accepted order still running (each ends by `poll_max_s`)."""
        while self._following:
            await asyncio.gather(*self._following, return_exceptions=True)

    async def order(self, user: int) -> tuple[int, int]:
        answer, _, _ = await self._place(user)
        return answer

    async def _place(self, user: int) -> tuple[tuple[int, int], asyncio.Task | None, bytes | None]:
        """Post one order; a 202 starts its follow-up, returned beside the answer with the answer's `Retry-After`
        (None without one)."""
        sent = time.perf_counter_ns()
        client, retries = self._client, self.retries
        assert client is not None, "open() the target first"
        number = None
        if retries is None:
            request = self._requests[user]
        else:  # an idempotency key, perhaps one sent before (a retry), with the body it was first sent with
            number, user = retries.next(user)
            key = {contract.IDEMPOTENCY_KEY_HEADER: retries.key(number)}
            request = client.prepare("POST", contract.ORDERS_PATH, self._bodies[user], key)
        try:
            answer = await client.send(request)
        except Exception as exc:
            return self._failed(exc), None, None
        if answer.status in (201, 202):
            try:
                ordered = contract.order_id(answer.status, answer.body)
            except (ValueError, KeyError, TypeError) as exc:  # a body outside the contract: an error, not an order
                return (self._failed(exc)[0], answer.status), None, None
        if answer.status == 202:
            accepted = ordered
            self.accepted += accepted
            if retries is not None and number is not None:
                retries.answered(number, accepted)
            following = asyncio.create_task(self._follow(accepted, sent))
            self._following.add(following)
            following.add_done_callback(self._following.discard)
            return self._accepted, following, None
        if answer.status != 201:
            return self._answer(answer.status, answer.body), None, answer.retry_after
        placed = ordered
        self.acknowledged += placed
        if retries is not None and number is not None:
            retries.answered(number, placed)
        return (self._replayed if answer.replayed else self._created), None, None

    async def _follow(self, accepted: bytes, sent_ns: int) -> None:
        """Poll the order's status until it is settled, or `poll_max_s` after it was sent."""
        client = self._client
        assert client is not None
        request = client.prepare("GET", contract.order_status_path(UUID(bytes=accepted)))
        give_up_at = sent_ns + self.poll_max_ns
        outcome = GAVE_UP
        while (left := give_up_at - time.perf_counter_ns()) > 0:
            await asyncio.sleep(min(self.poll_interval_s, left / 1e9))
            self.polls += 1
            try:
                answer = await client.send(request)
            except Exception as exc:
                outcome = type(exc).__name__
                continue
            if answer.status != 200:
                outcome = contract.error_outcome(answer.status, contract.error_code(answer.body))
                continue
            ended = contract.settled(json.loads(answer.body))
            if ended is not None:
                if ended == CREATED:
                    self.acknowledged += accepted  # a confirmed order now: the audit looks for it
                outcome = ended
                break
            outcome = GAVE_UP
        now = time.perf_counter_ns()
        self.settlements.add(sent_ns - self.origin_ns, now - sent_ns, self.outcomes.id(outcome), 0)

    def session(self) -> contextlib.AbstractAsyncContextManager[OrderFn]:
        return _settling_session(self)

    def wait_asked(self, retry_after: bytes | None) -> float:
        """The pause a `Retry-After` value asks for, in seconds, at most `retry_after_max_s`; 0.0 without a
        (readable) one."""
        asked = contract.retry_after_s(retry_after)
        return 0.0 if asked is None else min(asked, self.retry_after_max_s)

    def _answer(self, status: int, body: bytes) -> tuple[int, int]:
        code = contract.error_code(body)
        key = (status, code)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = (self.outcomes.id(contract.error_outcome(status, code)), status)
        return found


class _SettlingOrders:
    """A closed-model virtual user's `order` for the http target: its `settle()` waits for the follow-up of the
    user's last order, if it was accepted (the workload calls it after recording the order's answer)."""

    def __init__(self, target: HttpTarget) -> None:
        self._place = target._place
        self._following: asyncio.Task | None = None
        self._retry_after: bytes | None = None

    async def __call__(self, user: int) -> tuple[int, int]:
        answer, self._following, self._retry_after = await self._place(user)
        return answer

    async def settle(self) -> None:
        if self._following is not None:
            following, self._following = self._following, None
            # shielded: a virtual user stopped at the end of the run leaves its order's follow-up running, and the
            # run waits for every follow-up (HttpTarget.settle) before the audit
            await asyncio.shield(following)


class _HonouringOrders(_SettlingOrders):
    """`_SettlingOrders` that also tell the workload how long the last answer's `Retry-After` asked it to wait."""

    def __init__(self, target: HttpTarget) -> None:
        super().__init__(target)
        self._wait_asked = target.wait_asked

    def retry_after_s(self) -> float:
        return self._wait_asked(self._retry_after)


@contextlib.asynccontextmanager
async def _settling_session(target: HttpTarget) -> AsyncIterator[OrderFn]:
    yield _HonouringOrders(target) if target.honour_retry_after else _SettlingOrders(target)
