"""What one Locust worker process keeps while its users place orders: the requests to send and every answer as
a record, in the same compact columns and under the same outcome names as the native http target.

The locustfile's users only time the request and hand the answer over; everything else lives here, without
Locust or gevent imported, so that it is tested like any other module and the naming rules stay those of
`flashsale.contract`. At the end the worker turns it into the `WorkerResult` that `flashsale.load.merge`
concatenates with the other workers' (start offsets from the common origin, latencies in nanoseconds).

With idempotency keys, every order carries an `Idempotency-Key` header from a `KeyedRetries` of this process
(its prefix is random, so keys never collide across workers or machines); a retry resends an earlier key with the
body it was first sent with, and a 201 with `Idempotent-Replayed: true` is the outcome `replayed`.

Asynchronous orders (`serve --accept async`), as the native http target has them: a 202 is the outcome `accepted`
and its order id is kept for the audit; the user then follows the order at its status URL and hands its end to
`settled`, one settlement record an accepted order (a confirmed one is acknowledged then).

Honouring `Retry-After` (`flashsale load --honour-retry-after`): the users pause as long as a refusal's hint asks
(`wait_asked`, at most `retry_after_max_s`) and report each such pause (`waited`), as the native workload counts
them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from uuid import UUID

import psutil

from flashsale import contract
from flashsale.contract import ACCEPTED, CREATED, GAVE_UP, REPLAYED
from flashsale.load.merge import WorkerResult
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.retries import KeyedRetries
from flashsale.load.workloads import WorkloadStats

JSON = {"Content-Type": contract.JSON_CONTENT_TYPE}


@dataclass(frozen=True, slots=True)
class Order:
    """One request to send: its body, its headers, and its key number (None without keys)."""

    body: bytes
    headers: dict[str, str]
    key: int | None = None


class WorkerOrders:
    """The orders of one worker process: bodies encoded once per user, records appended as answers come."""

    def __init__(
        self,
        user_ids: list[str],
        flash_sale_id: UUID | str,
        *,
        quantity: int = 1,
        retries: KeyedRetries | None = None,
        retry_after_max_s: float = math.inf,
    ) -> None:
        if not user_ids:
            raise LookupError("the service listed no users")
        sale = str(UUID(str(flash_sale_id)))
        self.bodies = [contract.order_body(u, sale, quantity) for u in user_ids]
        self.retries = retries
        self.outcomes = Outcomes()
        self.records = RecordBuffer()
        self.acknowledged = bytearray()
        self.accepted = bytearray()  # ids of the orders answered 202, 16 bytes each
        self.settlements = RecordBuffer()  # one record an accepted order followed to its end
        self.polls = 0  # status requests sent
        self.retry_after_max_s = retry_after_max_s
        self.retry_after_waits = 0  # pauses a Retry-After made longer than the think time
        self.retry_after_wait_s = 0.0  # ... and their total
        self.started = 0  # requests sent (some may never be answered: cut off at the end of the grace period)
        self.origin_ns = 0
        self.last_end_ns = 0
        self._cpu_at_origin: float | None = None
        self._answers: dict[tuple[int, str | None], int] = {}
        self._errors: dict[type, int] = {}
        self._created = self.outcomes.id(CREATED)
        self._replayed = self.outcomes.id(REPLAYED)
        self._accepted = self.outcomes.id(ACCEPTED)

    @property
    def users(self) -> int:
        return len(self.bodies)

    def begin(self, origin_ns: int) -> None:
        """The run starts at `origin_ns` (`time.perf_counter_ns()`): offsets and CPU are measured from there."""
        self.origin_ns = origin_ns
        self._cpu_at_origin = _cpu_s()

    def next(self, user: int) -> Order:
        """The request for user number `user` (or, with retries, perhaps a resent earlier key)."""
        self.started += 1
        retries = self.retries
        if retries is None:
            return Order(self.bodies[user], JSON)
        number, user = retries.next(user)
        return Order(self.bodies[user], {**JSON, contract.IDEMPOTENCY_KEY_HEADER: retries.key(number)}, number)

    def answered(self, order: Order, start_ns: int, end_ns: int, status: int, body: bytes, replayed: bool) -> str:
        """Record an HTTP answer; its outcome name (a 201 or 202 whose body holds no order id is an error, named
        by its class, as under the native http target)."""
        if status in (201, 202):
            try:
                ordered = contract.order_id(status, body)
            except (ValueError, KeyError, TypeError) as exc:
                return self.failed(start_ns, end_ns, exc, status)
        if status == 201:
            placed = ordered
            self.acknowledged += placed
            if order.key is not None and self.retries is not None:
                self.retries.answered(order.key, placed)
            outcome = self._replayed if replayed else self._created
        elif status == 202:
            accepted = ordered
            self.accepted += accepted
            if order.key is not None and self.retries is not None:
                self.retries.answered(order.key, accepted)
            outcome = self._accepted
        else:
            code = contract.error_code(body)
            known = self._answers.get((status, code))
            if known is None:
                known = self._answers[status, code] = self.outcomes.id(contract.error_outcome(status, code))
            outcome = known
        self._add(start_ns, end_ns, outcome, status)
        return self.outcomes.names[outcome]

    def failed(self, start_ns: int, end_ns: int, error: BaseException, status: int = 0) -> str:
        """Record a request that got no HTTP answer (connection refused, timeout...), or one outside the contract
        (`status`): named by its class."""
        kind = type(error)
        outcome = self._errors.get(kind)
        if outcome is None:
            outcome = self._errors[kind] = self.outcomes.id(kind.__name__)
        self._add(start_ns, end_ns, outcome, status)
        return self.outcomes.names[outcome]

    def settled(self, accepted: bytes, sent_ns: int, end_ns: int, status: dict | None, error: str | None) -> str:
        """Record how the accepted order `accepted` (16 bytes, sent at `sent_ns`) ended when it was last seen at
        `end_ns`: its last status document (`completed`, `failed` with its reason, else still pending: `gave_up`),
        or the error of its last status request; the outcome name, as the native http target names it."""
        name = (contract.settled(status) if status is not None else None) or error or GAVE_UP
        if name == CREATED:
            self.acknowledged += accepted  # a confirmed order now: the audit looks for it
        self.settlements.add(sent_ns - self.origin_ns, end_ns - sent_ns, self.outcomes.id(name), 0)
        return name

    def wait_asked(self, retry_after: str | None) -> float:
        """The pause a `Retry-After` value asks for, in seconds, at most `retry_after_max_s`; 0.0 without a
        (readable) one."""
        asked = contract.retry_after_s(retry_after)
        return 0.0 if asked is None else min(asked, self.retry_after_max_s)

    def waited(self, seconds: float) -> None:
        """A user paused `seconds` for a `Retry-After`, longer than its think time."""
        self.retry_after_waits += 1
        self.retry_after_wait_s += seconds

    def _add(self, start_ns: int, end_ns: int, outcome: int, status: int) -> None:
        self.records.add(start_ns - self.origin_ns, end_ns - start_ns, outcome, status)
        if end_ns > self.last_end_ns:
            self.last_end_ns = end_ns

    def result(self, worker: int = 0) -> WorkerResult:
        """Everything measured, as `flashsale.load.merge` takes it; the CPU from `begin()` until now."""
        now = time.perf_counter_ns()
        cpu_s = _cpu_s() - self._cpu_at_origin if self._cpu_at_origin is not None else 0.0
        wall_s = max(0, now - self.origin_ns) / 1e9 if self._cpu_at_origin is not None else 0.0
        stats = WorkloadStats(
            started=self.started,
            interrupted=self.started - len(self.records),
            elapsed_s=max(0, self.last_end_ns - self.origin_ns) / 1e9,
            retry_after_waits=self.retry_after_waits,
            retry_after_wait_s=self.retry_after_wait_s,
        )
        return WorkerResult.measured(worker, self.records, self, stats=stats, cpu_s=cpu_s, wall_s=wall_s)


def _cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system
