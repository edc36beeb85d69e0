"""The OpenAPI 3.1 document of the service, derived from its endpoints (`flashsale.http.routes`, the routes
`create_app` serves) and the pydantic models of the `*_dto` modules they name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, JsonSchemaValue, models_json_schema
from starlette.routing import compile_path

from flashsale import __version__
from flashsale.contract import JSON_CONTENT_TYPE, REQUEST_ID_HEADER, RETRY_AFTER_HEADER
from flashsale.http.errors import ErrorResponse
from flashsale.http.routes import ENDPOINTS, PATH_PARAMETERS, Answer, Endpoint, Header

_SCHEMA_REF = "#/components/schemas/{model}"
_REQUEST_ID = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
_RETRY_AFTER = {RETRY_AFTER_HEADER: {"$ref": "#/components/headers/RetryAfter"}}
RETRY_AFTER_STATUSES = (429, 503)
ERROR_STATUS_TEXT = {
    404: "not found: `sale_not_found`, `user_not_found`, `order_not_found`",
    409: "refused by the sale: `sold_out`, `per_user_limit_exceeded`, `sale_not_active`; or "
    "`idempotency_key_reused`: the key already has an order for another user, sale or quantity",
    413: "`payload_too_large`: the body is over the size limit",
    415: "`unsupported_media_type`: the body is not declared as UTF-8 application/json",
    422: "`invalid_request` (malformed JSON, missing, extra or mistyped fields or parameters, ids that are not "
    "UUIDs), `invalid_quantity` or `invalid_idempotency_key`",
    429: "`rate_limited`: this user sent more orders a second than `serve --user-rate` allows; try again after "
    "`Retry-After` seconds",
    503: "try again after `Retry-After` seconds: `unavailable` (database down, or no pooled connection free in time), "
    "`overloaded` (too many requests already wait for a connection), `queue_full` (the order queue of "
    "`serve --queue-size` is full), `busy` or `rejected` (the strategy could not take the order now)",
}


def document(endpoints: Iterable[Endpoint] = ENDPOINTS) -> dict[str, Any]:
    """The document of `endpoints` (those `documented`): one operation for each, its schemas in `components`."""
    documented = [endpoint for endpoint in endpoints if endpoint.documented]
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}  # in order, once each
    for endpoint in documented:
        if endpoint.body is not None:
            models[endpoint.body, "validation"] = None
        for answer in endpoint.answers:
            if answer.model is not None:
                models[answer.model, "serialization"] = None
    models[ErrorResponse, "serialization"] = None
    refs, schemas = models_json_schema(list(models), ref_template=_SCHEMA_REF)
    ref = {model: refs[model, mode] for model, mode in models}  # each model is read or written, not both
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in documented:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flashsale order service",
            "version": __version__,
            "description": "Orders on flash sales through a chosen inventory-locking strategy. Every response "
            f"carries `{REQUEST_ID_HEADER}` (the caller's, when it sends a sane one); every error is "
            '`{"error": code, "message": text}`.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "headers": {
                "RequestId": {
                    "description": "the request's id, as the caller sent it or generated; logs carry the same",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                "RetryAfter": {
                    "description": "seconds to wait before trying again",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
            },
        },
    }


Refs = dict[type[BaseModel], JsonSchemaValue]


def _operation(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": endpoint.operation_id, "summary": endpoint.summary}
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in compile_path(endpoint.path)[2]
    ]
    if endpoint.query is not None:
        parameters += _query_parameters(endpoint.query)
    parameters += [{"name": h.name, "in": "header", **_header(h)} for h in endpoint.headers]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        schema = refs[endpoint.body]
        operation["requestBody"] = {"required": True, "content": {JSON_CONTENT_TYPE: {"schema": schema}}}
    error = refs[ErrorResponse]
    operation["responses"] = {
        **{str(answer.status): _answer(answer, refs) for answer in endpoint.answers},
        **{
            str(status): {
                "description": ERROR_STATUS_TEXT[status],
                "headers": {**_REQUEST_ID, **(_RETRY_AFTER if status in RETRY_AFTER_STATUSES else {})},
                "content": {JSON_CONTENT_TYPE: {"schema": error}},
            }
            for status in endpoint.errors
        },
    }
    return operation


def _answer(answer: Answer, refs: Refs) -> dict[str, Any]:
    if answer.model is None:
        content = {"text/plain": {"schema": {"type": "string"}}}
    else:
        content = {JSON_CONTENT_TYPE: {"schema": refs[answer.model]}}
    out = {
        "description": answer.description,
        "headers": {**_REQUEST_ID, **{h.name: _header(h) for h in answer.headers}},
        "content": content,
    }
    if answer.links:
        out["links"] = answer.links
    return out


def _header(header: Header) -> dict[str, Any]:
    return {"description": header.description, "required": header.required, "schema": header.schema}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()["properties"]
    return [
        {"name": name, "in": "query", "required": False, "description": field.description, "schema": schema[name]}
        for name, field in model.model_fields.items()
    ]
