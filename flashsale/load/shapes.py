"""The load shapes a run names (`LoadConfig.shape`), each validated when it is made: the closed model's `Closed`
(N virtual users, each loops order -> pause: k6's `constant-vus`), and the open model's `Open` (a fixed arrival
rate: `constant-arrival-rate`), `Ramping` (a rate that moves between points: `ramping-arrival-rate`) and `Spike`
(a sale's opening: N buyers, one order each, within a window). An open shape's `arrivals(duration_s, seed)` says
when each start is due; the run loops that drive them are `flashsale.load.workloads`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # numpy is imported where arrivals are computed, not by every `flashsale` start
    import numpy as np

SPIKE_STREAM = 0x5B1CE  # the spike's arrival instants come from their own random stream of the seed


class _Shape:
    """What every load shape tells the rest of the runner (`LoadConfig.shape` holds one), so that a new shape is
    its class here, its option of `flashsale load` (cli/load.py) and its line in the text summary (summary.py)."""

    model: ClassVar[str] = "open"  # "closed": virtual users loop order -> pause; "open": starts on a schedule

    @property
    def span_s(self) -> float | None:
        """How long its schedule lasts (None: as long as the run): `flashsale load`'s default duration."""
        return None

    def params(self) -> dict[str, Any]:
        """Its parameters under the names of `flashsale load`'s options: the summary's, and a measured cell's."""
        raise NotImplementedError

    def check_run(self, *, run_s: float, users: int | None) -> None:
        """Refuse (ValueError) a run of `run_s` seconds, warmup included, over `users` users (None: the sale's own)
        that this shape cannot make."""


@dataclass(frozen=True)
class Closed(_Shape):
    """k6 `constant-vus`: `vus` users, each placing an order, then pausing `think_ms`, until the end.

    `think_jitter` j draws each pause uniformly from `think_ms * (1 - j)` to `think_ms * (1 + j)` (the same mean),
    as real buyers pause: users that start together and pause exactly alike stay in step and meet at the row lock
    every cycle; with a jitter they drift apart."""

    model: ClassVar[str] = "closed"
    vus: int = 10
    think_ms: float = 100.0
    think_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.vus < 1:
            raise ValueError(f"vus must be at least 1, got {self.vus}")
        if self.think_ms < 0:
            raise ValueError(f"think time must be 0 or more, got {self.think_ms}")
        if not 0 <= self.think_jitter <= 1:
            raise ValueError(f"think jitter must be between 0 and 1, got {self.think_jitter}")

    @property
    def think_s(self) -> float:
        return self.think_ms / 1000

    def params(self) -> dict[str, Any]:
        return {"vus": self.vus, "think_ms": self.think_ms, "think_jitter": self.think_jitter}


@dataclass(frozen=True)
class Open(_Shape):
    """k6 `constant-arrival-rate`: `rate` orders a second on a fixed schedule, at most `max_inflight` at once."""

    rate: float
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return self.rate

    def params(self) -> dict[str, Any]:
        return {"rate": self.rate, "max_inflight": self.max_inflight}

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        interval_ns, count = _schedule_shape(self.rate, duration_s)
        return Arrivals(count, lambda i: int(i * interval_ns))


@dataclass(frozen=True)
class Ramping(_Shape):
    """k6 `ramping-arrival-rate`: the rate goes linearly from point to point of `stages`, (time s, orders/s) pairs
    from (0, r0); after the last point it stays at the last rate. Starts are where the cumulative count of
    arrivals (the integral of the rate) reaches 0, 1, 2, ...: the schedule a constant rate would make, bent."""

    stages: tuple[tuple[float, float], ...]
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple((float(t), float(r)) for t, r in self.stages))
        times = [t for t, _ in self.stages]
        if not self.stages or times[0] != 0:
            raise ValueError("stages must start at 0s, e.g. 0s:0,2s:2000,12s:2000")
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("stage times must increase")
        if any(r < 0 for _, r in self.stages) or not any(r > 0 for _, r in self.stages):
            raise ValueError("stage rates must be 0 or more, and not all 0")
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return max(r for _, r in self.stages)

    @property
    def span_s(self) -> float:
        return self.stages[-1][0]

    def params(self) -> dict[str, Any]:
        return {"stages": self.stages, "max_inflight": self.max_inflight}

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        import numpy as np

        points = list(self.stages)
        if points[-1][0] < duration_s:
            points.append((duration_s, points[-1][1]))
        t = np.array([p[0] for p in points], dtype=np.float64)
        r = np.array([p[1] for p in points], dtype=np.float64)
        # cumulative arrivals at each point, then invert the piecewise quadratic for every whole arrival
        cumulative = np.concatenate([[0.0], np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(t))])
        end = float(np.interp(duration_s, t, cumulative))
        wanted = np.arange(math.ceil(end - 1e-9), dtype=np.float64)
        segment = np.clip(np.searchsorted(cumulative, wanted, side="right") - 1, 0, len(t) - 2)
        t0, r0, c0 = t[segment], r[segment], cumulative[segment]
        slope = (r[segment + 1] - r0) / (t[segment + 1] - t0)
        need = wanted - c0
        with np.errstate(divide="ignore", invalid="ignore"):
            quadratic = (-r0 + np.sqrt(r0 * r0 + 2 * slope * need)) / slope
            linear = need / r0
        dt = np.where(np.abs(slope) > 1e-12, quadratic, linear)
        offsets = np.round((t0 + dt) * 1e9).astype(np.int64)
        offsets = offsets[offsets < round(duration_s * 1e9)]
        return Arrivals(len(offsets), offsets.item)


@dataclass(frozen=True)
class Spike(_Shape):
    """A sale's opening: `buyers` arrive at random instants within `window_s` of the run's start, each placing one
    order (buyer b is user b: the scenario needs at least `buyers` users)."""

    buyers: int
    window_s: float
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "buyers", int(self.buyers))
        object.__setattr__(self, "window_s", float(self.window_s))
        if self.buyers < 1 or not self.window_s > 0:
            raise ValueError(
                f"a spike needs at least one buyer and a positive window, got {self.buyers}:{self.window_s}"
            )
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return self.buyers / self.window_s

    @property
    def span_s(self) -> float:
        return self.window_s

    def params(self) -> dict[str, Any]:
        return {"spike": (self.buyers, self.window_s), "max_inflight": self.max_inflight}

    def check_run(self, *, run_s: float, users: int | None) -> None:
        if self.window_s > run_s:
            raise ValueError(f"the spike's window ({self.window_s:g} s) is longer than the run")
        if users is not None and users < self.buyers:
            raise ValueError(f"a spike of {self.buyers} buyers needs as many users, got {users}")

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        import numpy as np

        draw = np.random.default_rng([abs(seed), SPIKE_STREAM])
        offsets = np.sort(np.round(draw.uniform(0, self.window_s * 1e9, self.buyers)).astype(np.int64))
        return Arrivals(self.buyers, offsets.item, users=lambda i: i)


@dataclass(frozen=True)
class Arrivals:
    """An open workload's starts: `count` of them, the offset (ns from the origin) of start i, and the user of start
    i (None: drawn at random)."""

    count: int
    offset: Callable[[int], int]
    users: Callable[[int], int] | None = None


def _check_inflight(max_inflight: int) -> None:
    if max_inflight < 1:
        raise ValueError(f"max in-flight must be at least 1, got {max_inflight}")


OpenWorkload = Open | Ramping | Spike
Shape = Closed | OpenWorkload  # what `LoadConfig.shape` holds


def schedule(rate: float, duration_s: float) -> np.ndarray:
    """Scheduled start offsets (ns) of the open model: one every 1/rate seconds from 0, strictly before the end.

    `run_open` computes the same offsets one at a time (`int(i * interval)`), so a long run holds no schedule.
    """
    import numpy as np

    interval_ns, count = _schedule_shape(rate, duration_s)
    return (np.arange(count, dtype=np.float64) * interval_ns).astype(np.int64)


def _schedule_shape(rate: float, duration_s: float) -> tuple[float, int]:
    interval_ns = 1e9 / rate
    return interval_ns, max(0, math.ceil(duration_s * 1e9 / interval_ns - 1e-9))
