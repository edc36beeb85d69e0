"""Where Redis is, and how to open clients on it: `FLASHSALE_REDIS_URL` if set, else the embedded Valkey.

Clients are redis-py's asyncio `Redis`; hiredis (a dependency) parses the replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.connection import parse_url
from redis.exceptions import RedisError

from flashsale import config
from flashsale.kv import RedisUnavailable, embedded

CONNECT_TIMEOUT_S = 5.0
OLDEST_REDIS = 7  # scripts, streams and consumer groups as the project uses them (XAUTOCLAIM's reply, functions)


def redis_url(*, start_embedded: bool = True) -> str:
    """`FLASHSALE_REDIS_URL` if set (ValueError if redis-py cannot use it), else the embedded server's URL (started
    on first use)."""
    if (url := config.external_redis_url()) is not None:
        try:
            parse_url(url)
        except ValueError as exc:
            raise ValueError(f"{config.REDIS_URL_ENV}={describe(url)} is not a Redis URL: {exc}") from exc
        return url
    info = embedded.start() if start_embedded else embedded.running()
    if info is None:
        raise RedisUnavailable("the embedded Valkey is not running (start it with `flashsale redis up`)")
    return info.url()


def describe(url: str) -> str:
    """A URL with its password (in the user part or the query) written as ***, for messages."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        url = url.replace(f"{userinfo}@", f"{parts.username or ''}:***@", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def connect(url: str | None = None, **kwargs: Any) -> Redis:
    """An asyncio client on `url` (default: `redis_url()`); it connects on its first command. Close it with
    `await client.aclose()`, or use it as `async with connect() as client:`."""
    return Redis.from_url(url or redis_url(), **{"socket_connect_timeout": CONNECT_TIMEOUT_S, **kwargs})


def connect_pooled(url: str | None = None, *, max_connections: int, timeout_s: float, **kwargs: Any) -> Redis:
    """As `connect`, on at most `max_connections` connections: a command waits up to `timeout_s` for one to come
    free (then redis-py's `ConnectionError`), where `connect`'s pool opens one more for every concurrent command."""
    pool = BlockingConnectionPool.from_url(
        url or redis_url(),
        max_connections=max_connections,
        timeout=timeout_s,
        **{"socket_connect_timeout": CONNECT_TIMEOUT_S, **kwargs},
    )
    return Redis.from_pool(pool)


@dataclass(frozen=True)
class ServerDescription:
    """Which server answers, from its `INFO server`."""

    name: str  # "valkey" or "redis"
    version: str  # its own: Valkey 9.1.2
    redis_version: str  # the Redis it is compatible with: Valkey 9 says 7.2.4
    mode: str  # standalone, cluster or sentinel

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ServerDescription:
        name = str(info.get("server_name", "redis"))
        redis_version = str(info["redis_version"])
        return cls(
            name=name,
            version=str(info.get(f"{name}_version", redis_version)),
            redis_version=redis_version,
            mode=str(info.get("redis_mode") or info.get("server_mode") or "standalone"),
        )

    @property
    def title(self) -> str:
        return f"{'Valkey' if self.name == 'valkey' else 'Redis'} {self.version}"

    @property
    def supported(self) -> bool:
        major = self.redis_version.partition(".")[0]
        return major.isdigit() and int(major) >= OLDEST_REDIS


async def describe_server(url: str) -> ServerDescription:
    """The server answering at `url`; RedisUnavailable if none does."""
    try:
        async with connect(url) as client:
            return ServerDescription.from_info(await client.info("server"))
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"cannot reach Redis at {describe(url)}: {exc}") from exc


async def usable_server(url: str) -> ServerDescription:
    """`describe_server`, and RedisUnavailable if that server is older than the project needs."""
    server = await describe_server(url)
    if not server.supported:
        raise RedisUnavailable(
            f"{describe(url)} runs {server.title}; flashsale needs Redis {OLDEST_REDIS} or later, or Valkey"
        )
    return server
