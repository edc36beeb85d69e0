"""The order HTTP service (`flashsale serve`): Starlette on uvicorn over one connection pool.

`create_app` is imported on first use, so that what only needs the service's settings (`flashsale.http.settings`:
the command line, the load runner) does not pay for Starlette and the strategies' pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashsale.http.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from flashsale.http.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
