"""The order queue shared by every server process (`serve --admission redis --accept async`): a Redis Stream of the
accepted orders' ids, read by the settlers of every process through one consumer group.

- `add(order_id)` appends it if the stream has room (`lua/enqueue.lua`: its length against `size`, in one step), and
  answers None when it is full. The stream is the work list, not the record: the order is PENDING in PostgreSQL
  before it is added, so an entry lost (Redis restarted empty) loses no order: the settlers' sweep of the database
  finds it.
- `read(consumer)` gives a consumer the next entries nobody has read (`XREADGROUP ... >`); they stay in the
  consumer's pending list until `done(entry)` acknowledges and deletes them, after the order is settled. The
  stream's length is then the orders waiting or being settled: the queue's depth.
- `claim_idle(consumer, min_idle_ms)` takes over the entries another consumer read and has not acknowledged for
  that long (`XAUTOCLAIM`): those of a process that died, or of a settlement that failed.
- The group is made at the first use, and again if the server lost it (restarted empty: `NOGROUP`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from flashsale.admission import scripts

PREFIX = "flashsale:orders"
GROUP = "settlers"


@dataclass(frozen=True)
class StreamEntry:
    entry_id: str
    order_id: UUID


class OrderStream:
    def __init__(self, client: Redis, *, namespace: str, size: int, group: str = GROUP) -> None:
        if size < 1:
            raise ValueError(f"the order stream's size must be at least 1, got {size}")
        self.client, self.size, self.group = client, size, group
        self.key = f"{PREFIX}:{namespace}"
        self._enqueue = scripts.register(client, "enqueue")
        self._done = scripts.register(client, "done")

    async def ensure_group(self) -> None:
        """Make the consumer group (and the stream) unless they are there; it reads from the start, so that entries
        added before it are settled too."""
        try:
            await self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def length(self) -> int:
        """Orders waiting or being settled."""
        return int(await self.client.xlen(self.key))

    async def has_room(self) -> bool:
        return await self.length() < self.size

    async def add(self, order_id: UUID) -> str | None:
        """Append the order if the stream has room: its entry's id, or None when full."""
        entry = await self._enqueue(keys=[self.key], args=[self.size, str(order_id)])
        return _text(entry) if entry else None

    async def read(self, consumer: str, *, block_ms: int, count: int = 1) -> list[StreamEntry]:
        """Entries nobody has read yet, for `consumer`, waiting up to `block_ms` for one."""
        try:
            reply = await self.client.xreadgroup(self.group, consumer, {self.key: ">"}, count=count, block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        streams: Any = reply or []  # [(stream, entries)] (RESP2), {stream: [entries]} (RESP3)
        found = streams.values() if isinstance(streams, dict) else [entries for _, entries in streams]
        return [entry for entries in found for entry in _entries(entries)]

    async def claim_idle(self, consumer: str, *, min_idle_ms: int, count: int = 10) -> list[StreamEntry]:
        """Entries read by any consumer and not acknowledged for `min_idle_ms`, now `consumer`'s."""
        try:
            reply = await self.client.xautoclaim(self.key, self.group, consumer, min_idle_ms, "0-0", count=count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        return list(_entries(reply[1]))

    async def done(self, entry_id: str) -> bool:
        """Acknowledge and delete a settled entry; False if it had been acknowledged already."""
        return bool(await self._done(keys=[self.key], args=[self.group, entry_id]))

    async def pending(self) -> int:
        """Entries read and not acknowledged, in every consumer's list."""
        try:
            summary = await self.client.xpending(self.key, self.group)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return 0
        return int(summary["pending"])


def _entries(entries: list[Any]) -> list[StreamEntry]:
    """Stream entries as redis-py gives them (`[(id, {field: value})]`); an entry deleted while pending comes back
    from XAUTOCLAIM without fields (redis 7+ leaves it out) and is skipped."""
    found = []
    for entry_id, fields in entries:
        order = (fields or {}).get(b"order") or (fields or {}).get("order")
        if order is not None:
            found.append(StreamEntry(_text(entry_id), UUID(_text(order))))
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
