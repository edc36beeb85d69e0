"""The metrics of one worker among several (`flashsale serve --workers N`), where any worker may answer a scrape
and must report the totals over all of them.

prometheus-client's multiprocess mode keeps each process's metric values in memory-mapped files under
`PROMETHEUS_MULTIPROC_DIR` (one set per pid; the value storage is chosen when prometheus_client is imported, so the
variable must be set before the worker starts), and `MultiProcessCollector` merges the files at scrape time:
counters and histograms are summed, gauges as each declares (`multiprocess_mode`). The request histogram, the order
counters and `flashsale_service_workers` need nothing more.

What a single process reads from live objects when it is scraped (the pool's `get_stats()`, the strategy's
counters, the database guard) lives in each worker's memory, which the answering worker cannot read. So each
worker mirrors them into multiprocess metrics of the same names, every `REFRESH_S` and whenever it answers a scrape
itself: running totals become Counters, increased by their growth since the last refresh (a worker that has exited
still counts, as a counter should); instant values become Gauges summed over the live workers ("livesum": pool
connections, requests waiting) or their maximum ("livemax": the circuit is open in some worker). A scrape is exact
for the answering worker and at most `REFRESH_S` old for the others. The parent removes the files of a worker that
has exited from the live gauges (`mark_process_dead`).

Process metrics (CPU, memory) are per process and not exported in this mode: the load runner measures the
service's CPU itself, over every process.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from flashsale.http.live_metrics import FAMILIES, LiveObjects

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_S = 1.0


class RunningTotal:
    """A multiprocess Counter that follows a running total this process keeps elsewhere."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen: dict[tuple[str, ...], float] = {}

    def follow(self, labels: tuple[str, ...], total: float) -> None:
        grown = total - self._seen.get(labels, 0.0)
        if grown > 0:
            (self._counter.labels(*labels) if labels else self._counter).inc(grown)
            self._seen[labels] = total


class SharedMetrics:
    def __init__(self, live: LiveObjects) -> None:
        self._live = live
        self._gauges = {
            family: Gauge(family.name, family.doc, family.labels, registry=None, multiprocess_mode=family.merge)
            for family in FAMILIES
            if family.kind == "gauge"
        }
        self._totals = {
            family: RunningTotal(Counter(family.name, family.doc, family.labels, registry=None))
            for family in FAMILIES
            if family.kind == "counter"
        }

    def refresh(self) -> None:
        """Copy this process's pool, strategy and guard figures into the shared metrics."""
        for family, samples in self._live.read():
            for labels, value in samples:
                if family.kind == "counter":
                    self._totals[family].follow(labels, value)
                else:
                    gauge = self._gauges[family]
                    (gauge.labels(*labels) if labels else gauge).set(value)

    async def refresh_periodically(self, interval_s: float = REFRESH_S) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(interval_s)

    def exposition(self) -> bytes:
        """Every worker's metrics, merged (this one's refreshed first)."""
        self.refresh()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
