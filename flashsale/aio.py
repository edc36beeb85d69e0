"""Running coroutines from synchronous entry points, on uvloop when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory():
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the code runs without it
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def run_anywhere(coro: Coroutine[Any, Any, T]) -> T:
    """`run`, also from a thread that already runs an event loop (a Jupyter kernel): the coroutine then gets its
    own loop in a worker thread, and this call blocks until it is done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flashsale") as worker:
        return worker.submit(run, coro).result()
