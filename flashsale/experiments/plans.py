"""What each notebook measures, as cells, so that `flashsale sweep` (with a progress bar over the grid) and the
notebook itself (in JupyterLab) run exactly the same grid from the same parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from flashsale.experiments.cells import Cell, run_cells
from flashsale.experiments.store import Dataset
from flashsale.http.settings import ServiceSettings
from flashsale.load.shapes import Closed, Spike
from flashsale.placement import Placement

# "Large enough never to sell out": no run here sells more than a few hundred thousand units.
UNLIMITED = 100_000_000
NEVER_SELLS_OUT = "never sells out"  # the label of the baseline's cells on a sale that never runs out


def _load(*, workers: int = 0, **fields: Any):
    """The load configuration of one cell; `workers` 0 is the default for the machine (see `default_workers`)."""
    from flashsale.load import LoadConfig

    return LoadConfig(workers=workers or None, **fields)


def baseline_cells(
    *,
    target: str,
    strategy: str,
    vus: int,
    think_ms: float,
    duration_s: float,
    users: int,
    repeats: int = 1,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """The seed's k6 scenario twice, `repeats` times: inventory 50 / limit 1 (sells out early, as the original run
    did), and an inventory that never runs out (`NEVER_SELLS_OUT`, the one k6 also runs: `clients`)."""
    cells = []
    for repeat in range(repeats):
        common: dict[str, Any] = dict(
            target=target,
            strategy=strategy,
            shape=Closed(vus=vus, think_ms=think_ms),
            duration_s=duration_s,
            users=users,
            seed=seed + repeat,
            workers=workers,
        )
        cells += [
            Cell("sells out (50 units, 1 per user)", _load(**common, inventory=50, per_user_limit=1), repeat),
            Cell(NEVER_SELLS_OUT, _load(**common, inventory=UNLIMITED, per_user_limit=UNLIMITED), repeat),
        ]
    return cells


def concurrency_cells(
    *,
    strategies: Sequence[str],
    vus: Sequence[int],
    duration_s: float,
    warmup_s: float,
    think_ms: float,
    target: str,
    inventory: int,
    users: int,
    repeats: int,
    pgbench: bool,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """strategies x virtual-user levels x repeats; every order may succeed unless `inventory` says otherwise."""
    cells = []
    for repeat in range(repeats):
        for strategy in strategies:
            for level in vus:
                load = _load(
                    target=target,
                    strategy=strategy,
                    shape=Closed(vus=level, think_ms=think_ms),
                    duration_s=duration_s,
                    warmup_s=warmup_s,
                    users=users,
                    inventory=inventory,
                    per_user_limit=UNLIMITED,
                    seed=seed + repeat,
                    workers=workers,
                )
                # pgbench drives the database directly: a reference line for the db target only.
                cells.append(
                    Cell(
                        f"{strategy}, {level} VUs, repeat {repeat + 1}",
                        load,
                        repeat,
                        pgbench=pgbench and target == "db",
                    )
                )
    return cells


def contention_cells(
    *,
    strategies: Sequence[str],
    contention_vus: int,
    duration_s: float,
    warmup_s: float,
    target: str,
    users: int,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """Each strategy at `vus` with no think time, plus `pessimistic` alone at 1 VU: its latency there is the
    lock hold time of the seed's rule of thumb (throughput <= 1 / hold time)."""
    common: dict[str, Any] = dict(
        target=target,
        duration_s=duration_s,
        warmup_s=warmup_s,
        users=users,
        inventory=UNLIMITED,
        per_user_limit=UNLIMITED,
        seed=seed,
        workers=workers,
    )
    busy, alone = Closed(vus=contention_vus, think_ms=0.0), Closed(vus=1, think_ms=0.0)
    cells = [Cell(f"{s}, {contention_vus} VUs", _load(strategy=s, shape=busy, **common)) for s in strategies]
    cells.append(Cell("pessimistic, 1 VU (lock hold time)", _load(strategy="pessimistic", shape=alone, **common)))
    return cells


def fault_cells(
    *,
    target: str,
    strategy: str,
    faults: Sequence[str],
    vus: int,
    think_ms: float,
    duration_s: float,
    users: int,
    retry_rate: float,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """One run per fault (`db-restart@4s`, `db-stop@4s:2s`, ...) on a sale that never sells out, so that every
    answer before and after the outage is an order; clients resend a share of their idempotency keys."""
    common: dict[str, Any] = dict(
        target=target,
        strategy=strategy,
        shape=Closed(vus=vus, think_ms=think_ms),
        duration_s=duration_s,
        users=users,
        inventory=UNLIMITED,
        per_user_limit=UNLIMITED,
        retry_rate=retry_rate,
        seed=seed,
        workers=workers,
    )
    return [Cell(fault, _load(**common, faults=(fault,))) for fault in faults]


def admission_cells(
    *,
    strategy: str,
    vus: int,
    duration_s: float,
    users: int,
    inventory: int,
    pool_size: int,
    queue_size: int,
    queue_workers: int,
    user_rate: float,
    repeats: int = 1,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """FlashDeal phase 3 over HTTP, `repeats` times: `vus` VUs without pause on a sale of `inventory` units (one per
    user), without admission control, behind the bounded queue, behind the queue and the per-user rate limit, and
    the last again with clients that wait out each refusal's `Retry-After` before their next order (as browsers and
    well-behaved clients do; without it the VUs retry at once)."""
    cells = []
    for repeat in range(repeats):
        common: dict[str, Any] = dict(
            target="http", strategy=strategy, shape=Closed(vus=vus, think_ms=0.0), duration_s=duration_s, users=users,
            inventory=inventory, per_user_limit=1, pool_size=pool_size, seed=seed + repeat, workers=workers,
        )  # fmt: skip
        queue = ServiceSettings(queue_size=queue_size, queue_workers=queue_workers)
        cells += [
            Cell("no admission control", _load(**common), repeat),
            Cell(f"queue of {queue_size}, {queue_workers} worker", _load(**common, service=queue), repeat),
            Cell(
                f"queue + {user_rate:g} orders/s per user",
                _load(**common, service=queue.replace(user_rate=user_rate)),
                repeat,
            ),
            Cell(
                "the same, clients honour Retry-After",
                _load(**common, service=queue.replace(user_rate=user_rate), honour_retry_after=True),
                repeat,
            ),
        ]
    return cells


def async_cells(
    *,
    strategy: str,
    vus: int,
    duration_s: float,
    users: int,
    inventory: int,
    pool_size: int,
    queue_size: int,
    queue_workers: int,
    retry_rate: float,
    poll_interval_s: float,
    spike_buyers: int,
    spike_window_s: float,
    sale_opens_s: float,
    repeats: int = 1,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """FlashDeal phases 4 and 5 over HTTP, `repeats` times: the same closed-model load answered when the order is
    placed (sync, behind the queue) and when it is accepted (async: 202, then the client polls), with a share of
    requests resending a recent idempotency key; then a sale-opening spike against both."""
    cells = []
    for repeat in range(repeats):
        common: dict[str, Any] = dict(
            target="http", strategy=strategy, inventory=inventory, per_user_limit=1, pool_size=pool_size,
            seed=seed + repeat, workers=workers, poll_interval_s=poll_interval_s,
        )  # fmt: skip
        sync = ServiceSettings(queue_size=queue_size, queue_workers=queue_workers)
        async_ = sync.replace(accept="async")
        closed: dict[str, Any] = dict(
            common, shape=Closed(vus=vus, think_ms=0.0), duration_s=duration_s, users=users, retry_rate=retry_rate
        )
        spike: dict[str, Any] = dict(
            common, users=max(users, spike_buyers), shape=Spike(buyers=spike_buyers, window_s=spike_window_s),
            duration_s=spike_window_s, sale_opens_s=sale_opens_s,
        )  # fmt: skip
        cells += [
            Cell("sync: 201 once placed", _load(**closed, service=sync), repeat),
            Cell("async: 202, then polled", _load(**closed, service=async_), repeat),
            Cell("spike, sync", _load(**spike, service=sync), repeat),
            Cell("spike, async", _load(**spike, service=async_), repeat),
        ]
    return cells


GATE = "redis_gate"  # the stock gate the 7.0 notebook sets against the database's designs


def redis_front_cells(
    *,
    strategy: str,
    vus: int,
    duration_s: float,
    warmup_s: float,
    users: int,
    front_users: int,
    inventory: int,
    pool_size: int,
    queue_size: int,
    queue_workers: int,
    user_rate: float,
    service_workers: int,
    compared: Sequence[str],
    gate_duration_s: float,
    reference: bool,
    faults: Sequence[str] = (),
    repeats: int = 1,
    seed: int = 0,
    workers: int = 0,
) -> list[Cell]:
    """Redis in front of the order flow (FlashDeal's phase 7), three parts:

    - admission: phase 3 over HTTP (`vus` VUs without pause, the queue and the per-user rate limit) on
      `service_workers` processes, with local and with Redis admission, `repeats` times; `front_users` users, few
      enough that each one sends far more than the limit, and a warmup that spends each user's burst;
    - the gate: `redis_gate` and each strategy of `compared` in-process at `vus` VUs for `gate_duration_s`, on a sale
      of `inventory` units (one per user) and on one that never sells out, `repeats` times; the first repeat with its
      reference line (`reference`: pgbench, or redis-benchmark for the gate);
    - faults: one run per fault of `faults` (`redis-kill@2s:1s`) through the whole front (`redis_gate` behind Redis
      admission on `service_workers` processes) on a sale that never sells out.
    """
    cells = []
    for repeat in range(repeats):
        common: dict[str, Any] = dict(
            target="http", strategy=strategy, shape=Closed(vus=vus, think_ms=0.0), duration_s=duration_s,
            warmup_s=warmup_s, users=front_users, inventory=inventory, per_user_limit=1, pool_size=pool_size,
            seed=seed + repeat, workers=workers,
        )  # fmt: skip
        local = ServiceSettings(
            workers=service_workers, queue_size=queue_size, queue_workers=queue_workers, user_rate=user_rate
        )
        cells += [
            Cell(f"local admission, {service_workers} processes", _load(**common, service=local), repeat),
            Cell(
                f"Redis admission, {service_workers} processes",
                _load(**common, service=local.replace(admission="redis")),
                repeat,
            ),
        ]
    for repeat in range(repeats):
        for name in dict.fromkeys([GATE, *compared]):
            gate: dict[str, Any] = dict(
                target="db", strategy=name, shape=Closed(vus=vus, think_ms=0.0), duration_s=gate_duration_s,
                warmup_s=warmup_s, users=users, seed=seed + repeat, workers=workers,
            )  # fmt: skip
            measured = reference and repeat == 0
            cells += [
                Cell(f"{name}, sale of {inventory}", _load(**gate, inventory=inventory, per_user_limit=1), repeat,
                     pgbench=measured),
                Cell(f"{name}, {NEVER_SELLS_OUT}", _load(**gate, inventory=UNLIMITED, per_user_limit=UNLIMITED),
                     repeat, pgbench=measured),
            ]  # fmt: skip
    front = ServiceSettings(workers=service_workers, user_rate=user_rate, admission="redis")
    faulted: dict[str, Any] = dict(
        target="http", strategy=GATE, shape=Closed(vus=vus, think_ms=0.0), duration_s=duration_s, users=users,
        inventory=UNLIMITED, per_user_limit=UNLIMITED, pool_size=pool_size, seed=seed, workers=workers, service=front,
    )  # fmt: skip
    return cells + [Cell(fault, _load(**faulted, faults=(fault,))) for fault in faults]


NOTEBOOK_PLANS: dict[str, Callable[..., list[Cell]]] = {
    "1.0-devlog-baseline": baseline_cells,
    "2.0-concurrency": concurrency_cells,
    "3.0-lock-contention": contention_cells,
    "4.0-faults": fault_cells,
    "5.0-admission-control": admission_cells,
    "6.0-async-orders": async_cells,
    "7.0-redis-front": redis_front_cells,
}


def measure(
    notebook: str,
    dataset: Dataset,
    cells: list[Cell],
    *,
    allow_load: bool = True,
    progress: bool = False,
    fresh: bool = False,
):
    """Measure a notebook's cells as the notebook itself does: the baseline's sale that never sells out with k6
    beside the runner (`clients.run_with_k6`), every other cell through `run_cells` (`fresh`: all of them again)."""
    if notebook == "1.0-devlog-baseline":
        from flashsale.experiments.clients import run_with_k6

        return run_with_k6(
            dataset, cells, paired=NEVER_SELLS_OUT, allow_load=allow_load, progress=progress, fresh=fresh
        )
    return run_cells(dataset, cells, allow_load=allow_load, progress=progress, fresh=fresh)


def plan(notebook: str, parameters: dict[str, Any]) -> tuple[Dataset, list[Cell]] | None:
    """The dataset and cells a notebook measures with these parameters (None for notebooks that measure nothing
    through cells). `parameters` are the notebook's own parameter names."""
    make = NOTEBOOK_PLANS.get(notebook)
    if make is None:
        return None
    import inspect

    accepted = inspect.signature(make).parameters
    kwargs = {name: parameters[name] for name in accepted if name in parameters}
    return Dataset.named(parameters["dataset"]), placed(make(**kwargs), parameters)


PLACEMENT_PARAMETERS = ("placement", "db_cpus", "service_cpus", "client_cpus")


def placed(cells: list[Cell], parameters: dict[str, Any]) -> list[Cell]:
    """The cells with the placement the parameters ask for (`placement`: free or split, each `*_cpus` given
    replacing its part; see flashsale.placement), resolved to CPU lists in each cell's load configuration, so that
    a cell measured under another placement has another key. The service's set goes only to cells that start a
    service. A server the project did not start cannot be placed: its cells are refused when they run, with what
    to do (`--placement free`)."""
    parts = {part: parameters.get(f"{part}_cpus") for part in ("db", "service", "client")}
    where = Placement.resolve(parameters.get("placement"), **parts)
    if not where.placed:
        return cells
    return [
        dataclasses.replace(
            cell,
            load=cell.load.replace(
                db_cpus=where.db,
                client_cpus=where.client,
                service_cpus=where.service if cell.load.target == "http" and cell.load.base_url is None else None,
            ),
        )
        for cell in cells
    ]
