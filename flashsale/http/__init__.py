"""The order HTTP service (`flashsale serve`): Starlette on uvicorn over one connection pool."""

from flashsale.http.app import create_app

__all__ = ["create_app"]
