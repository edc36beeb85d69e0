"""The sale windows a service with `--accept async` refuses early from: an order for a sale that is not open is
answered 409 `sale_not_active` at acceptance, as the strategies would answer it, instead of 202 and a failure its
buyer learns at the next poll.

    windows = SaleWindows(url)
    await windows.start()                        # listens for changed windows
    await windows.is_open(pool, sale_id)         # False: refuse; True, or None for a sale it cannot find: accept

Each sale's window (`starts_at`, `ends_at`) is read from the database on first use and kept. PostgreSQL says when a
window changes (migration 0006: a trigger notifies the channel `flash_sale_window` with the sale's id, and a
connection of this cache LISTENs to it), and the cache drops that sale, so that the next order reads it again: a
load run that opens its sale at `--sale-opens-at` moves the window before it opens, and the cache follows. Should
notifications be lost (the listening connection dropped), every entry is read again after `max_age_s` anyway, and
the whole cache is dropped while the listener reconnects. A window is compared with the clock at each order, so a
sale opens and closes on time without another read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from flashsale.db.connection import connect_async
from flashsale.domain.clock import Clock, utc_now
from flashsale.repositories import flash_sales

CHANNEL = "flash_sale_window"
MAX_AGE_S = 1.0  # a window read this long ago is read again, notification or not
RECONNECT_S = 0.5

log = logging.getLogger("flashsale.sale_windows")


@dataclass(frozen=True)
class _Window:
    starts_at: datetime
    ends_at: datetime
    read_at: float  # time.monotonic()


class SaleWindows:
    def __init__(self, url: str, *, max_age_s: float = MAX_AGE_S, clock: Clock = utc_now) -> None:
        self.url, self.max_age_s, self.clock = url, max_age_s, clock
        self._windows: dict[UUID, _Window] = {}
        self._listener: asyncio.Task | None = None
        self.listening = asyncio.Event()  # set while notifications reach the cache

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever(), name="sale-window-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def is_open(self, pool: AsyncConnectionPool, sale_id: UUID) -> bool | None:
        """Whether the sale is open now; None when the database has no such sale (the caller's insert says so)."""
        window = self._windows.get(sale_id)
        if window is None or time.monotonic() - window.read_at > self.max_age_s:
            async with pool.connection() as conn:
                sale = await flash_sales.get(conn, sale_id)
            if sale is None:
                return None
            window = _Window(sale.starts_at, sale.ends_at, time.monotonic())
            self._windows[sale_id] = window
        return window.starts_at <= self.clock() < window.ends_at

    def forget(self, sale_id: UUID) -> None:
        self._windows.pop(sale_id, None)

    async def _listen_forever(self) -> None:
        while True:
            try:
                conn = await connect_async(self.url)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._windows.clear()  # whatever changed while nobody listened is read again
                    self.listening.set()
                    async for notify in conn.notifies():
                        with contextlib.suppress(ValueError):
                            self.forget(UUID(notify.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sale window listener lost", extra={"fields": {"cause": repr(exc)}})
            self.listening.clear()
            self._windows.clear()
            await asyncio.sleep(RECONNECT_S)
