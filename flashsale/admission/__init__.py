"""Admission control in front of the order strategy (the original's phase 3): a per-user rate limit that refuses
before any database work, and a bounded in-process queue served by a fixed number of workers that refuses at once
when full. Both live in one process: under `serve --workers N` each worker process has its own."""

from flashsale.admission.order_queue import OrderQueue, QueueFull, QueueStopped
from flashsale.admission.rate_limit import RateLimited, TokenBucket, UserRateLimiter

__all__ = ["OrderQueue", "QueueFull", "QueueStopped", "RateLimited", "TokenBucket", "UserRateLimiter"]
