"""The Lua scripts of shared admission (`lua/*.lua`, shipped in the package), registered on one client: each call is
an EVALSHA, loaded again by redis-py if the server lost it (a restart)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

SCRIPTS = ("rate_limit", "enqueue", "done")


@cache
def source(name: str) -> str:
    """The text of script `name` (one of `SCRIPTS`)."""
    if name not in SCRIPTS:
        raise ValueError(f"no admission script {name!r}; there are {', '.join(SCRIPTS)}")
    return (resources.files("flashsale.admission") / "lua" / f"{name}.lua").read_text()


def register(client: Redis, name: str) -> AsyncScript:
    return client.register_script(source(name))
