"""An event loop on a virtual clock, so that workload tests can check latencies exactly, on any machine.

Time stands still while anything is ready to run, and jumps to the next timer when nothing is: a target that
`await asyncio.sleep(0.01)` takes exactly 10 ms, however loaded the machine is. `stall(s)` moves the clock on
without yielding, as a client blocked for `s` seconds would (its event loop runs nothing meanwhile).

    loop = VirtualTimeLoop()
    monkeypatch.setattr(workloads, "time", loop.time_module)   # the workloads read perf_counter_ns() from it
    loop.run_until_complete(run_open(...))
"""

from __future__ import annotations

import asyncio
import selectors
from types import SimpleNamespace


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(_Selector(self))
        self.now_ns = 0
        self.time_module = SimpleNamespace(perf_counter_ns=lambda: self.now_ns)

    def time(self) -> float:
        return self.now_ns / 1e9

    def stall(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)

    def next_timer(self) -> float | None:
        """When the earliest timer is due (asyncio drops cancelled timers from the head before it selects)."""
        return self._scheduled[0].when() if self._scheduled else None


class _Selector(selectors.DefaultSelector):
    """Never blocks: whatever the loop would wait for, it finds at once, or the clock jumps to the next timer."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        when = self._loop.next_timer()
        if when is None:
            raise RuntimeError("the virtual-time loop would wait forever: nothing is ready and no timer is set")
        self._loop.now_ns = max(self._loop.now_ns, round(when * 1e9))
        return ready
