"""Where each part of a measurement runs: the database, the service and the client on CPU sets of their own.

On a small machine the load generator competes with the database for the same cores, and a figure then measures
both. Load is normally measured with the generator on cores the system under test never uses; this module is how
the lab asks for that. A CPU set is written as `taskset -c` takes it (`0`, `0-3`, `0,2,4-7`).

- `Placement(db, service, client)`: the three sets of one run (None: not placed, free to run anywhere). Whatever
  else belongs to the system under test (the service, when not given) goes with the database.
- `Placement.split()`: the database (and service) on the first cores, the client on the last quarter (at least
  one core): on 2 cores, the database on CPU 0 and the client on CPU 1. `make report` measures this way.
- `pin(pid, cpus)` places every thread of a process, `pin_tree` a process and all its descendants (a postmaster
  and its backends: backends forked later inherit the postmaster's set), `pinned_here(cpus)` this process's
  threads for the length of a block (children started inside it, such as load workers, inherit it), and
  `pinned_thread(cpus)` the calling thread alone (for a program it starts, such as pgbench).

Linux only: elsewhere `supported()` is False, and a placement is refused with a clear error (run unplaced).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

NAMED = ("free", "split")  # `free`: nothing placed; `split`: Placement.split() for this machine
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class PlacementError(ValueError):
    """A CPU set that cannot be used here (malformed, a CPU this machine does not let us use, no affinity support),
    or a part that cannot be placed (a database server the project did not start)."""


def supported() -> bool:
    return hasattr(os, "sched_setaffinity") and Path("/proc/self/task").is_dir()


def usable_cpus() -> frozenset[int]:
    """The CPUs this machine lets the project use: the cgroup's CPU set, else every online CPU. Unlike this process's
    own affinity, it does not shrink while the process is pinned."""
    for path in ("/sys/fs/cgroup/cpuset.cpus.effective", "/sys/fs/cgroup/cpuset/cpuset.effective_cpus"):
        with contextlib.suppress(OSError, PlacementError):
            text = Path(path).read_text().strip()
            if text:
                return _parse(text)
    return frozenset(range(psutil.cpu_count() or 1))


def _parse(text: str) -> frozenset[int]:
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = _RANGE.match(part)
        if match is None:
            raise PlacementError(f"not a CPU list: {text!r} (write it as taskset -c does, e.g. 0, 0-3 or 0,2-3)")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise PlacementError(f"not a CPU range: {part!r} in {text!r}")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def parse_cpus(text: str) -> frozenset[int]:
    """`0`, `0-3`, `0,2-3` as a set of CPUs, each of which this machine lets the project use."""
    cpus = _parse(text)
    usable = usable_cpus()
    if outside := cpus - usable:
        raise PlacementError(
            f"CPU {format_cpus(outside)} of {text!r} is not usable here (usable: {format_cpus(usable)})"
        )
    return cpus


def format_cpus(cpus: Iterable[int]) -> str:
    """The shortest `taskset -c` form: {0, 1, 2, 5} is `0-2,5`."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu != run[-1] + 1:
            parts.append(_span(run))
            run = []
        run.append(cpu)
    if run:
        parts.append(_span(run))
    return ",".join(parts)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def normalize(text: str | None) -> str | None:
    """A CPU list in its canonical form (validated), or None for "not placed"."""
    if text is None or str(text).strip() in ("", "free"):
        return None
    if not supported():
        raise PlacementError("this system has no CPU affinity (sched_setaffinity): run unplaced")
    return format_cpus(parse_cpus(str(text)))


@dataclass(frozen=True)
class Placement:
    """The CPU sets of one measurement, canonical `taskset -c` strings or None (not placed)."""

    db: str | None = None
    service: str | None = None
    client: str | None = None

    def __post_init__(self) -> None:
        for part in ("db", "service", "client"):
            object.__setattr__(self, part, normalize(getattr(self, part)))

    @classmethod
    def resolve(cls, name: str | None = None, **parts: str | None) -> Placement:
        """The placement `name` (free or split; None: free) with each part given in `parts` (db, service, client;
        None or empty: the named one's) replacing its set."""
        base = cls.named(name or "free")
        return cls(**{part: parts.get(part) or getattr(base, part) for part in ("db", "service", "client")})

    @classmethod
    def named(cls, name: str) -> Placement:
        """`free` (nothing placed) or `split` (see `split`)."""
        if name == "free":
            return cls()
        if name == "split":
            return cls.split()
        raise PlacementError(f"unknown placement {name!r}; choose one of: {', '.join(NAMED)}")

    @classmethod
    def split(cls) -> Placement:
        """This machine's usable CPUs as `split_cpus` divides them; with a single CPU (or no affinity) nothing can
        be split, and nothing is placed."""
        halves = split_cpus(usable_cpus()) if supported() else None
        return cls() if halves is None else cls(db=halves[0], client=halves[1])

    @property
    def service_cpus(self) -> str | None:
        """The service's set: its own, else the database's (the rest of the system under test goes with it)."""
        return self.service or self.db

    @property
    def placed(self) -> bool:
        return any((self.db, self.service, self.client))


def split_cpus(cpus: Iterable[int]) -> tuple[str, str] | None:
    """(database and service, client): the client on the last quarter of `cpus` (at least one CPU), the rest for
    the system under test; None for fewer than two CPUs."""
    ordered = sorted(set(cpus))
    if len(ordered) < 2:
        return None
    client = max(1, len(ordered) // 4)
    return format_cpus(ordered[:-client]), format_cpus(ordered[-client:])


def affinity_of(pid: int) -> str | None:
    """The CPU set process `pid` may run on now, or None if it is gone."""
    try:
        return format_cpus(os.sched_getaffinity(pid))
    except (OSError, AttributeError):
        return None


def pin(pid: int, cpus: frozenset[int] | str) -> None:
    """Put every thread of process `pid` on `cpus` (threads that end meanwhile are skipped)."""
    cpus = parse_cpus(cpus) if isinstance(cpus, str) else cpus
    for tid in _threads(pid):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, cpus)


def pin_tree(pid: int, cpus: frozenset[int] | str) -> None:
    """Put process `pid` on `cpus` first (what it forks from now on inherits the set), then every descendant it
    already has: nothing forked in between is missed."""
    cpus = parse_cpus(cpus) if isinstance(cpus, str) else cpus
    pin(pid, cpus)
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, FileNotFoundError):
                pin(child.pid, cpus)


def _affinity(tid: int) -> set[int] | None:
    try:
        return os.sched_getaffinity(tid)
    except ProcessLookupError:  # the thread ended meanwhile
        return None


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None


@contextlib.contextmanager
def pinned_thread(cpus: str | None) -> Iterator[None]:
    """The calling thread alone on `cpus` inside the block (nothing happens for None): a program it starts there
    (pgbench) inherits the set, and the rest of the process is left as it is."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, parse_cpus(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def pinned_here(cpus: str | None) -> Iterator[None]:
    """Every thread of this process on `cpus` inside the block (nothing happens for None), each thread's own set
    given back after it. Processes started inside the block inherit the set of the thread that started them."""
    if cpus is None:
        yield
        return
    before = {tid: mask for tid in _threads(os.getpid()) if (mask := _affinity(tid)) is not None}
    pin(os.getpid(), cpus)
    try:
        yield
    finally:
        mine = before[threading.get_native_id()]
        for tid in _threads(os.getpid()):  # threads born inside the block get this thread's set from before
            with contextlib.suppress(ProcessLookupError, OSError):
                os.sched_setaffinity(tid, before.get(tid, mine))
