"""Redis plumbing: the embedded Valkey server and clients on whichever server is configured. Nothing here knows
about orders.

The package is `kv`, not `redis`, so that no `from flashsale import redis` ever hides redis-py's own `redis`.
"""

from __future__ import annotations


class RedisUnavailable(RuntimeError):
    """No Redis to use: the configured server cannot be reached or is too old, or the embedded one cannot run here;
    the message says which and why."""
