"""What a load run depends on (`LoadConfig`), validated when it is made, and how many load-generating processes a
run gets by default."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, get_args
from uuid import UUID

from flashsale import strategies
from flashsale.http.settings import ServiceSettings
from flashsale.load.faults import Fault
from flashsale.load.retries import KeyedRetries
from flashsale.load.shapes import Closed, Shape
from flashsale.placement import Placement, parse_cpus

TARGETS = ("db", "http")
ENGINES = ("native", "locust")  # native: flashsale's own workers; locust: Locust's distributed mode (http target)
OPEN_MODEL_POOL = 32  # default pool (db target) or service pool (http target) in the open model
# The default number of load-generating processes (see `default_workers`).
VUS_PER_WORKER = 16  # closed model: virtual users one event loop serves before a second process is worth it
RATE_PER_WORKER = 1000.0  # open model: starts a second one event loop makes on time
CORES_PER_WORKER = 4  # the load generator takes at most a quarter of the cores: the database and service need the rest


@dataclass(frozen=True)
class LoadConfig:
    """Everything a run depends on; the defaults are the seed's k6 test (10 VUs, 100 ms think, 100 users,
    50 units, one per user)."""

    target: str = "db"  # "db": the strategy in-process; "http": the order service
    strategy: str = strategies.DEFAULT_STRATEGY
    # How the orders come (flashsale.load.workloads): `Closed` virtual users pausing between orders (default: the
    # seed's 10, pausing 100 ms), or the open model's starts on a schedule: `Open` (a constant rate), `Ramping`
    # (stages) or `Spike` (a sale's opening)
    shape: Shape = field(default_factory=Closed)
    sale_opens_s: float | None = None  # open the sale this long after the run's origin (None: the scenario's window)
    duration_s: float = 30.0  # measured time, after the warmup
    warmup_s: float = 0.0  # run first, excluded from the figures
    users: int = 100
    inventory: int = 50
    per_user_limit: int = 1
    quantity: int = 1  # units per order
    shards: int | None = None  # passed to scenario.reset when it takes shards
    reset: bool = True  # a fresh scenario before the run; False: the newest sale (or `sale_id`) as it is
    sale_id: UUID | None = None
    seed: int = 0  # the random choice of users
    pool_size: int | None = None  # db target pool / started service pool; default vus (closed) or 32 (open)
    base_url: str | None = None  # http target: a running service; None starts one on a free loopback port
    database_url: str | None = None  # default: FLASHSALE_DATABASE_URL, else the embedded server
    sample_interval_s: float = 0.1  # pg_stat_activity sampling
    grace_s: float = 10.0  # how long requests in flight at the end may take to finish
    progress: bool = False  # a tqdm bar on stderr
    faults: tuple[str, ...] = ()  # e.g. ("db-restart@10s",) or ("db-stop@10s:3s",): see flashsale.load.faults
    request_timeout_s: float = 10.0  # http target: a request not answered by then is a `TimeoutError`
    pool_timeout_s: float | None = None  # wait for a pooled connection (db target 30 s; started service its default)
    idempotency_keys: bool = False  # every order carries an idempotency key (implied by retry_rate > 0)
    retry_rate: float = 0.0  # share of requests that resend one of the last `retry_pool` keys with the same body
    retry_pool: int = 50
    workers: int | None = None  # load-generating processes; None: `default_workers` for this machine and load
    engine: str = "native"  # "locust": Locust's master and `workers` Locust workers (http target only)
    # http target, the service this run starts: its settings (`flashsale serve --workers N --queue-size ...`); its
    # strategy, pool size and pool timeout are the run's own (`strategy`, `pool_size`, `pool_timeout_s`)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    poll_interval_s: float = 1.0  # an answered 202 is followed at its status URL this often
    poll_max_s: float = 30.0  # ... until it is settled or this long has passed since the order (then `gave_up`)
    # http target, closed model: a virtual user answered with a `Retry-After` hint (429, 503) pauses that long, at
    # most `retry_after_max_s` (None: up to the run's end), before its next order, if that is longer than its think
    honour_retry_after: bool = False
    retry_after_max_s: float | None = None
    # Where each part runs (CPU lists as `taskset -c` takes them; None: anywhere; see flashsale.placement): the
    # embedded database, the started service (default: with the database) and the client (the runner, its load
    # processes, Locust, pgbench).
    db_cpus: str | None = None
    service_cpus: str | None = None
    client_cpus: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "locust" and self.target != "http":
            raise ValueError("the locust engine drives the http target only (add --target http)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.service != ServiceSettings() and not self.starts_service:
            raise ValueError(
                "service workers, queue, user rate and accept are the started service's (--target http, no --base-url)"
            )
        if self.service_cpus is not None and (self.target != "http" or self.base_url is not None):
            raise ValueError("service CPUs are for the service this run starts (--target http, no --base-url)")
        placed = Placement(db=self.db_cpus, service=self.service_cpus, client=self.client_cpus)  # validates them
        for part in ("db", "service", "client"):
            object.__setattr__(self, f"{part}_cpus", getattr(placed, part))
        if not isinstance(self.shape, Shape):
            kinds = ", ".join(kind.__name__ for kind in get_args(Shape))
            raise ValueError(f"the shape must be one of {kinds}, got {self.shape!r}")
        if not self.poll_interval_s > 0 or not self.poll_max_s > 0:
            raise ValueError("the poll interval and the poll limit must be positive")
        self._check_retry_after()
        if self.strategy not in strategies.names():
            raise strategies.UnknownStrategy(self.strategy)
        if self.base_url is not None and self.target != "http":
            raise ValueError("a base URL is only for the http target")
        if not self.duration_s > 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if self.warmup_s < 0 or self.grace_s < 0 or not self.sample_interval_s > 0:
            raise ValueError("warmup and grace must be 0 or more, the sample interval positive")
        if self.pool_size is not None and self.pool_size < 1:
            raise ValueError(f"pool size must be at least 1, got {self.pool_size}")
        if not self.request_timeout_s > 0 or (self.pool_timeout_s is not None and not self.pool_timeout_s > 0):
            raise ValueError("request and pool timeouts must be positive")
        KeyedRetries(rate=self.retry_rate, pool=self.retry_pool)  # validates both
        if isinstance(self.faults, str):
            object.__setattr__(self, "faults", (self.faults,))
        object.__setattr__(self, "faults", tuple(str(Fault.parse(f)) for f in self.faults))
        for fault in self.fault_list:
            if fault.at_s >= self.warmup_s + self.duration_s:
                raise ValueError(f"fault {fault} comes after the run's end ({self.warmup_s + self.duration_s:g} s)")
        self.shape.check_run(run_s=self.warmup_s + self.duration_s, users=self.users if self.reset else None)
        if self.sale_opens_s is not None and self.sale_opens_s < 0:
            raise ValueError(f"the sale opens at 0 s or later, got {self.sale_opens_s}")
        if self.starts_service:
            self.started_service  # noqa: B018 - the service's own refusals (ServiceSettings), with the run's pool

    def _check_retry_after(self) -> None:
        if self.retry_after_max_s is not None:
            if not self.honour_retry_after:
                raise ValueError("--retry-after-max caps the waits of --honour-retry-after: give both")
            if not self.retry_after_max_s > 0:
                raise ValueError(f"--retry-after-max must be positive, got {self.retry_after_max_s:g}")
        if not self.honour_retry_after:
            return
        if self.target != "http":
            raise ValueError("--honour-retry-after reads an HTTP header: it needs --target http")
        if self.model != "closed":
            raise ValueError(
                "--honour-retry-after is for the closed model's virtual users (--vus): the open model's orders "
                "start on their schedule whatever the answers"
            )

    @property
    def model(self) -> str:
        """The shape's: "closed" (virtual users) or "open" (starts on a schedule)."""
        return self.shape.model

    @property
    def placement(self) -> Placement:
        return Placement(db=self.db_cpus, service=self.service_cpus, client=self.client_cpus)

    @property
    def keyed(self) -> bool:
        return self.idempotency_keys or self.retry_rate > 0

    @property
    def fault_list(self) -> list[Fault]:
        return [Fault.parse(f) for f in self.faults]

    @property
    def effective_pool_size(self) -> int:
        if self.pool_size is not None:
            return self.pool_size
        if isinstance(self.shape, Closed):
            return self.shape.vus
        return min(self.shape.max_inflight, OPEN_MODEL_POOL)

    @property
    def starts_service(self) -> bool:
        """The run starts the service (the http target without a base URL)."""
        return self.target == "http" and self.base_url is None

    @property
    def started_service(self) -> ServiceSettings:
        """The settings of the service this run starts: `service`, with the run's strategy and pool, without an
        access log."""
        pool_timeout = {} if self.pool_timeout_s is None else {"pool_timeout_s": self.pool_timeout_s}
        return self.service.replace(
            strategy=self.strategy, pool_size=self.effective_pool_size, access_log=False, **pool_timeout
        )

    @property
    def worker_count(self) -> int:
        """`workers`, or the default for this machine and load (`default_workers`)."""
        return self.workers if self.workers is not None else default_workers(self)

    def replace(self, **changes: Any) -> LoadConfig:
        return dataclasses.replace(self, **changes)


def available_cores() -> int:
    """The cores this process may run on now (a container's CPU set, not the host's count; inside
    `placement.pinned_here`, the client's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers(config: LoadConfig, cores: int | None = None) -> int:
    """Load-generating processes for `config` on a machine with `cores` cores (default: this one's).

    One process per `VUS_PER_WORKER` virtual users (closed model) or per `RATE_PER_WORKER` orders/s (open model),
    but at most one per `CORES_PER_WORKER` cores, and at least one: on a 2-core machine that is one (the database
    and the service need the cores more than the client), on 16 cores up to 4, on 64 cores up to 16.
    With the client on CPUs of its own (`client_cpus`), one process per client CPU at most: the database and the
    service have theirs.
    """
    shape = config.shape
    if isinstance(shape, Closed):
        demand = math.ceil(shape.vus / VUS_PER_WORKER)
    else:
        demand = math.ceil(shape.peak_rate / RATE_PER_WORKER)
    if config.client_cpus is not None:
        return max(1, min(len(parse_cpus(config.client_cpus)), demand))
    cores = available_cores() if cores is None else cores
    return max(1, min(cores // CORES_PER_WORKER, demand))
