"""The gate's Lua scripts (`lua/*.lua`, shipped in the package), registered on one client: each call is an EVALSHA,
loaded again by redis-py if the server lost it (a restart)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

SCRIPTS = ("decide", "give_back", "invalidate", "lock", "install", "unlock")


@cache
def source(name: str) -> str:
    """The text of script `name` (one of `SCRIPTS`)."""
    if name not in SCRIPTS:
        raise ValueError(f"no gate script {name!r}; there are {', '.join(SCRIPTS)}")
    return (resources.files("flashsale.stock_gate") / "lua" / f"{name}.lua").read_text()


def register(client: Redis) -> dict[str, AsyncScript]:
    return {name: client.register_script(source(name)) for name in SCRIPTS}
