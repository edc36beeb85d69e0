"""Reading a JSON request body into a pydantic model, refusing everything else with a 4xx `ApiError`:
a body that is not declared JSON (415), too large (413), empty, malformed or off the model (422)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from flashsale.http.errors import ApiError, from_validation_error

MAX_BODY_BYTES = 8 * 1024  # an order is about 120 bytes
M = TypeVar("M", bound=BaseModel)


async def read_model(request: Request, model: type[M], *, max_bytes: int = MAX_BODY_BYTES) -> M:
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request, max_bytes=max_bytes)
    if not body.strip():
        raise ApiError(422, "invalid_request", "the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def check_content_type(value: str | None) -> None:
    media_type, _, params = (value or "").partition(";")
    media_type = media_type.strip().lower()
    kind, _, subtype = media_type.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise ApiError(
            415, "unsupported_media_type", f"send the body as application/json, not {value or 'no content type'}"
        )
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ApiError(415, "unsupported_media_type", "JSON bodies must be UTF-8")


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    too_large = ApiError(413, "payload_too_large", f"the request body must be at most {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away before sending the whole body") from None
    return b"".join(chunks)
