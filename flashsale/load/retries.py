"""Idempotency keys for a load run, and retries that resend them, as the original project's k6 script did.

Every request gets a fresh key, except that with probability `rate` it resends one of the last `pool` keys with the
body that key was first sent with (same user, same sale, same quantity): a client retrying an order whose answer it
may not have seen. The clients' answers are checked as they come: every 201 for one key must name the same order
(`disagreements` counts those that did not), and the audit then checks each key against the database.

Memory: 20 bytes a key (the user it was sent for, the order it was answered with).
"""

from __future__ import annotations

import random
import uuid
from array import array
from collections import deque
from collections.abc import Iterator
from typing import Any
from uuid import UUID

_NO_ANSWER = bytes(16)


class KeyedRetries:
    def __init__(self, *, rate: float = 0.0, pool: int = 50, seed: int = 0, prefix: str | None = None) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"retry rate must be from 0 up to (not including) 1, got {rate}")
        if pool < 1:
            raise ValueError(f"retry pool must be at least 1, got {pool}")
        self.rate = rate
        self.pool = pool
        # Keys are unique across runs (a run with --no-reset must not meet the keys of an earlier one).
        self.prefix = prefix or uuid.uuid4().hex[:12]
        self._random = random.Random(f"{seed}/retries").random
        self._recent: deque[int] = deque(maxlen=pool)
        self._users = array("I")  # user index of each key
        self._answers = bytearray()  # 16 bytes each key: the order it was answered with, zeros until then
        self.retries = 0  # requests that resent a key
        self.disagreements = 0  # 201s naming another order than an earlier 201 for the same key

    def next(self, user: int) -> tuple[int, int]:
        """The key number and user for the next request, whose user would be `user` if it is not a retry."""
        if self._recent and self.rate and self._random() < self.rate:
            number = self._recent[int(self._random() * len(self._recent))]
            self.retries += 1
            return number, self._users[number]
        number = len(self._users)
        self._users.append(user)
        self._answers += _NO_ANSWER
        self._recent.append(number)
        return number, user

    def key(self, number: int) -> str:
        return f"{self.prefix}-{number:x}"

    def answered(self, number: int, order_id: bytes) -> None:
        """Key `number` was answered with a 201 for the order whose id is `order_id` (16 bytes)."""
        at = 16 * number
        earlier = self._answers[at : at + 16]
        if earlier == _NO_ANSWER:
            self._answers[at : at + 16] = order_id
        elif earlier != order_id:
            self.disagreements += 1

    @property
    def keys(self) -> int:
        return len(self._users)

    def acknowledged(self) -> tuple[list[str], list[UUID]]:
        """Every key answered with a 201, and the order it named (the first, if they disagreed)."""
        answered = list(self._answered())
        return [key for key, _ in answered], [UUID(bytes=order) for _, order in answered]

    def worker_fields(self) -> dict[str, Any]:
        """The keys as a load worker reports them (`WorkerResult`'s fields): how many were sent, retried and
        answered inconsistently, and every acknowledged key with its order's 16 bytes."""
        answered = list(self._answered())
        return {
            "keys": self.keys,
            "retries": self.retries,
            "disagreements": self.disagreements,
            "acknowledged_keys": [key for key, _ in answered],
            "acknowledged_key_orders": [order for _, order in answered],
        }

    def _answered(self) -> Iterator[tuple[str, bytes]]:
        answers = memoryview(self._answers)
        for number in range(len(self._users)):
            answer = bytes(answers[16 * number : 16 * number + 16])
            if answer != _NO_ANSWER:
                yield self.key(number), answer
