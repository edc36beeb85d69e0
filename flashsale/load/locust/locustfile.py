"""The flash-sale scenario as a Locust user, for `flashsale load --engine locust` and for plain Locust, on one
machine or on several (`flashsale locustfile` prints this file's path):

    locust -f $(flashsale locustfile) --host http://HOST:8000 --flash-sale-id SALE --headless -u 50 -r 50 -t 30s
    locust -f $(flashsale locustfile) --master --expect-workers 4 --host http://HOST:8000 --flash-sale-id SALE ...
    locust -f $(flashsale locustfile) --worker --master-host MASTER            # on each load machine

It is the native runner's closed model: each user draws one of the service's users at random (`GET /api/users`, read
once per process), posts `POST /api/orders` with `{"user_id", "flash_sale_id", "quantity"}`, then pauses
`--think-ms` (an order answered 202, under `serve --accept async`, is first followed at its status URL every
`--poll-interval` seconds until it is settled or `--poll-max` seconds have passed since it was sent); with
`--idempotency-keys` or `--retry-rate` every order carries an `Idempotency-Key` and some resend an earlier one
(`flashsale.load.retries`); with `--honour-retry-after` a user answered with a `Retry-After` hint pauses that long
(at most `--retry-after-max` seconds) instead of its think time, when longer. The parameters are Locust custom
arguments, each also read from an environment variable (`FLASH_SALE_ID`, `FLASHSALE_THINK_MS`, ...: see
`locust -f ... --help`); a master forwards its values to its workers when a run starts, so a worker on another
machine needs only `--master-host`.

Measurement. Locust's statistics keep response times in buckets (rounded to two significant digits above 100 ms)
and percentiles from those, so each user also times every request itself with `time.perf_counter_ns()` and hands
the answer to this process's `WorkerOrders`: one exact record a request, named as the native runner names it
(`flashsale.contract`), in compact columns. Locust's own success and failure follow the same names: refusals
(`sold_out`, ...) are successes, only errors are failures.

The engine (`flashsale.load.locust.engine`) sets the directory `FLASHSALE_LOCUST_RESULTS` for its workers: each
one writes `ready-<pid>` there once it has the users, and its `WorkerResult` (`worker-<pid>.pickle`) when the
test stops. Files rather than Locust's messages, because records are tens of megabytes on long runs (27 bytes a
request) and the master has no use for them: they go straight from each worker to the engine, and a file appears
whole (written, then renamed). The engine also passes `--origin-ns`, its common origin in CLOCK_MONOTONIC
nanoseconds (one clock for every process of the machine), and `--run-s`: users wait until the origin before
their first order and start none after `run_s` from it. Without an origin (plain Locust) each worker measures
from its own start of the test.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import gevent
from locust import FastHttpUser, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from flashsale import contract
from flashsale.contract import ACCEPTED, fetch_user_ids, is_error
from flashsale.load.locust.orders import WorkerOrders
from flashsale.load.retries import KeyedRetries

RESULTS_DIR_ENV = "FLASHSALE_LOCUST_RESULTS"
STATUS_NAME = contract.order_status_path("[id]")  # one entry in Locust's statistics for every status request

logger = logging.getLogger("flashsale.locust")


@dataclass
class _Process:
    """This process's part of the test: the users read at start-up, and the orders of the current test."""

    user_ids: list[str] | None = None
    orders: WorkerOrders | None = None
    think_s: float = 0.1
    think_jitter: float = 0.0
    stop_ns: int = 0  # no order starts at or after this instant (0: until Locust stops the users)
    seed: int = 0
    poll_interval_s: float = 1.0
    poll_max_ns: int = 30_000_000_000
    honour_retry_after: bool = False
    worker: int = 0
    begun: bool = False
    numbers: itertools.count = field(default_factory=itertools.count)  # of this process's users, for their seeds


_process = _Process()


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    # On the parser itself, not in an argument group: Locust's web UI options (include_in_web_ui) are its own.
    group = parser
    group.add_argument("--flash-sale-id", env_var="FLASH_SALE_ID", default="", help="the sale to order from")
    group.add_argument(
        "--think-ms", type=float, env_var="FLASHSALE_THINK_MS", default=100.0, help="pause after each order"
    )
    group.add_argument(
        "--think-jitter", type=float, env_var="FLASHSALE_THINK_JITTER", default=0.0,
        help="each pause drawn uniformly within think-ms * (1 -/+ this)",
    )  # fmt: skip
    group.add_argument("--quantity", type=int, env_var="FLASHSALE_QUANTITY", default=1, help="units per order")
    group.add_argument(
        "--idempotency-keys",
        action="store_true",
        env_var="FLASHSALE_IDEMPOTENCY_KEYS",
        help="send every order with an Idempotency-Key (implied by --retry-rate)",
    )
    group.add_argument(
        "--retry-rate",
        type=float,
        env_var="FLASHSALE_RETRY_RATE",
        default=0.0,
        help="share of orders that resend one of the last --retry-pool keys with the same body",
    )
    group.add_argument("--retry-pool", type=int, env_var="FLASHSALE_RETRY_POOL", default=50)
    group.add_argument("--seed", type=int, env_var="FLASHSALE_SEED", default=0, help="the random choice of users")
    group.add_argument(
        "--request-timeout",
        type=float,
        env_var="FLASHSALE_REQUEST_TIMEOUT",
        default=10.0,
        help="seconds before an order without an answer is a TimeoutError",
    )
    group.add_argument(
        "--poll-interval", type=float, env_var="FLASHSALE_POLL_INTERVAL", default=1.0,
        help="seconds between status requests for an order answered 202",
    )  # fmt: skip
    group.add_argument(
        "--poll-max", type=float, env_var="FLASHSALE_POLL_MAX", default=30.0,
        help="seconds after an order answered 202 to give up following it (gave_up)",
    )  # fmt: skip
    group.add_argument(
        "--honour-retry-after", action="store_true", env_var="FLASHSALE_HONOUR_RETRY_AFTER",
        help="a user answered with a Retry-After hint pauses that long before its next order (if longer than think)",
    )  # fmt: skip
    group.add_argument(
        "--retry-after-max", type=float, env_var="FLASHSALE_RETRY_AFTER_MAX", default=0.0,
        help="seconds a Retry-After pause lasts at most (0: as long as asked)",
    )  # fmt: skip
    group.add_argument(
        "--origin-ns",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="the common origin (time.perf_counter_ns() of this machine) set by flashsale's engine",
    )
    group.add_argument(
        "--run-s", type=float, default=0.0, include_in_web_ui=False, help="no order starts after this long from origin"
    )


@events.init.add_listener
def read_users(environment, **_) -> None:
    """Workers read the users at start-up when they know the host, so that a run starts with them at hand."""
    if isinstance(environment.runner, MasterRunner):
        return
    if environment.host:
        _process.user_ids = fetch_user_ids(environment.host)
    results = os.environ.get(RESULTS_DIR_ENV)
    if results:
        (Path(results) / f"ready-{os.getpid()}").write_text(str(len(_process.user_ids or ())))


@events.test_start.add_listener
def prepare(environment, **_) -> None:
    """A worker's orders for this test, from the options its master forwarded (or its own)."""
    if isinstance(environment.runner, MasterRunner):
        return
    options = environment.parsed_options
    if not options.flash_sale_id:
        logger.error("no sale to order from: give --flash-sale-id (or FLASH_SALE_ID)")
        _process.orders = None
        return
    keyed = options.idempotency_keys or options.retry_rate > 0
    user_ids = _process.user_ids or fetch_user_ids(environment.host)
    _process.user_ids = user_ids
    orders = WorkerOrders(
        user_ids,
        options.flash_sale_id,
        quantity=options.quantity,
        retries=KeyedRetries(rate=options.retry_rate, pool=options.retry_pool, seed=options.seed) if keyed else None,
        retry_after_max_s=options.retry_after_max or math.inf,
    )
    orders.origin_ns = options.origin_ns or time.perf_counter_ns()
    _process.orders = orders
    _process.begun = False
    _process.think_s = options.think_ms / 1000
    _process.think_jitter = options.think_jitter
    _process.stop_ns = orders.origin_ns + round(options.run_s * 1e9) if options.run_s > 0 else 0
    _process.seed = options.seed
    _process.poll_interval_s = options.poll_interval
    _process.poll_max_ns = round(options.poll_max * 1e9)
    _process.honour_retry_after = options.honour_retry_after
    _process.worker = getattr(environment.runner, "worker_index", 0)
    OrderingUser.network_timeout = OrderingUser.connection_timeout = options.request_timeout


@events.test_stop.add_listener
def ship_records(environment, **_) -> None:
    """Locust's last statistics to the master, then this worker's records to the engine (if it gave a directory).

    The statistics go first, before the worker tells its master it stopped, so that the master's totals hold
    every request once the run is over (otherwise the last ones wait for the next report, up to 3 s later)."""
    runner = environment.runner
    if isinstance(runner, MasterRunner) or _process.orders is None:
        return
    if isinstance(runner, WorkerRunner):
        report: dict = {}
        environment.events.report_to_master.fire(client_id=runner.client_id, data=report)
        runner.send_message("stats", report)
    result = _process.orders.result(_process.worker)
    results = os.environ.get(RESULTS_DIR_ENV)
    if results:
        path = Path(results) / f"worker-{os.getpid()}.pickle"
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        partial.rename(path)
    logger.info("%d orders recorded exactly (%d started)", result.requests, result.stats.started)


class OrderingUser(FastHttpUser):
    """One buyer: order, pause, order, ... from the origin until the end of the run."""

    retry_after_s = 0.0  # the pause the last answer's Retry-After asked for (honoured: --honour-retry-after)

    def wait_time(self) -> float:
        """The think time (drawn within its jitter), or the wait a `Retry-After` asked for when longer, cut short at
        the end of the run (as the native runner's users do)."""
        think, jitter = _process.think_s, _process.think_jitter
        if jitter:
            think = self.pause(think * (1 - jitter), think * (1 + jitter))
        left = max(0.0, (_process.stop_ns - time.perf_counter_ns()) / 1e9) if _process.stop_ns else math.inf
        asked, self.retry_after_s = self.retry_after_s, 0.0
        if asked > think and _process.orders is not None:
            think = min(asked, left)
            _process.orders.waited(think)
        return min(think, left)

    def on_start(self) -> None:
        orders = _process.orders
        if orders is None:
            raise StopUser
        stream = f"{_process.seed}/{_process.worker}/{next(_process.numbers)}"
        self.pick = random.Random(stream).random
        self.pause = random.Random(f"{stream}/think").uniform  # its own stream, as the native runner's users
        delay_ns = orders.origin_ns - time.perf_counter_ns()
        if delay_ns > 0:
            gevent.sleep(delay_ns / 1e9)
        if not _process.begun:
            _process.begun = True
            orders.begin(orders.origin_ns)

    @task
    def order(self) -> None:
        orders = _process.orders
        clock = time.perf_counter_ns
        if _process.stop_ns and clock() >= _process.stop_ns:
            raise StopUser
        order = orders.next(int(self.pick() * orders.users))
        started = clock()
        response = self.client.post(contract.ORDERS_PATH, data=order.body, headers=order.headers, catch_response=True)
        ended = clock()
        with response:
            if response.status_code:
                replayed = response.headers.get(contract.REPLAYED_HEADER) == "true"
                outcome = orders.answered(order, started, ended, response.status_code, response.content, replayed)
            else:
                outcome = orders.failed(started, ended, response.error)
            if is_error(outcome):
                response.failure(outcome)
            else:
                response.success()
            if _process.honour_retry_after and response.headers is not None:
                self.retry_after_s = orders.wait_asked(response.headers.get(contract.RETRY_AFTER_HEADER))
        if outcome == ACCEPTED:
            self.follow(orders, contract.order_id(202, response.content), started)

    def follow(self, orders: WorkerOrders, accepted: bytes, sent_ns: int) -> None:
        """Poll the accepted order's status until it is settled, or `--poll-max` after it was sent (as the native
        http target does), and record how it ended."""
        path, clock = contract.order_status_path(UUID(bytes=accepted)), time.perf_counter_ns
        give_up_at = sent_ns + _process.poll_max_ns
        status: dict | None = None
        error: str | None = None
        while (left := give_up_at - clock()) > 0:
            gevent.sleep(min(_process.poll_interval_s, left / 1e9))
            orders.polls += 1
            with self.client.get(path, name=STATUS_NAME, catch_response=True) as response:
                if response.status_code == 200:
                    status, error = response.json(), None
                    response.success()
                else:
                    error = (
                        contract.error_outcome(response.status_code, contract.error_code(response.content or b""))
                        if response.status_code
                        else type(response.error).__name__
                    )
                    status = None
                    response.failure(error)
            if status is not None and contract.settled(status) is not None:
                break
        orders.settled(accepted, sent_ns, clock(), status, error)
