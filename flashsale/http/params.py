"""Reading path and query parameters, refusing bad ones with a 422 `invalid_request`."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from flashsale.http.errors import ApiError, from_validation_error

M = TypeVar("M", bound=BaseModel)


def path_uuid(request: Request, name: str) -> UUID:
    text = request.path_params[name]
    try:
        return UUID(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: {text[:64]!r} is not a UUID") from None


def query_model(request: Request, model: type[M]) -> M:
    """The query string as `model` (values arrive as text; parameters the model does not name are ignored)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise from_validation_error(exc) from None
