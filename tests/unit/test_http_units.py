"""The HTTP layer's pure parts: request ids, error mapping, content types, request validation, the document."""

from __future__ import annotations

import argparse
import uuid

import psycopg
import pytest
from psycopg_pool import PoolTimeout, TooManyRequests
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from flashsale import contract
from flashsale.db.guard import DatabaseDown
from flashsale.domain import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    PerUserLimitExceeded,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.http import openapi, request_id
from flashsale.http.errors import ApiError, from_validation_error, retry_after, to_api_error
from flashsale.http.json_body import check_content_type
from flashsale.http.order_dto import PlaceOrderRequest
from flashsale.services import idempotency
from flashsale.strategies import Busy, Rejected

SALE, USER = uuid.uuid4(), uuid.uuid4()


class TestRequestId:
    def test_keeps_a_sane_id(self):
        assert request_id.from_headers([(b"x-request-id", b"abc-123_:/.")]) == "abc-123_:/."

    @pytest.mark.parametrize("value", [b"", b"a b", b"x" * 129, b"caf\xc3\xa9", b"line\r\nbreak"])
    def test_replaces_an_unsafe_id_with_a_uuid(self, value):
        assert uuid.UUID(request_id.from_headers([(b"x-request-id", value)])).version == 4

    def test_makes_one_when_there_is_none(self):
        first, second = (request_id.from_headers([(b"accept", b"*/*")]) for _ in range(2))
        assert first != second


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("exc", "status", "code"),
        [
            (SaleNotFound(SALE), 404, "sale_not_found"),
            (UserNotFound(USER), 404, "user_not_found"),
            (SoldOut(SALE), 409, "sold_out"),
            (PerUserLimitExceeded(limit=1), 409, "per_user_limit_exceeded"),
            (SaleNotActive(SALE), 409, "sale_not_active"),
            (Busy("locked"), 503, "busy"),
            (Rejected("queue full"), 503, "rejected"),
            (PoolTimeout("couldn't get a connection after 0.50 sec"), 503, "unavailable"),
            (psycopg.OperationalError("server closed the connection unexpectedly"), 503, "unavailable"),
            (DatabaseDown(), 503, "unavailable"),
            (TooManyRequests("the pool has already 1000 requests waiting"), 503, "overloaded"),
            (IdempotencyKeyReused("k-1"), 409, "idempotency_key_reused"),
            (InvalidIdempotencyKey("a b"), 422, "invalid_idempotency_key"),
            (HTTPException(404), 404, "not_found"),
            (HTTPException(405, headers={"Allow": "GET"}), 405, "method_not_allowed"),
        ],
    )
    def test_status_and_code(self, exc, status, code):
        error = to_api_error(exc)
        assert (error.status, error.code) == (status, code)
        assert ("Retry-After" in error.headers) == (status == 503)

    def test_database_details_stay_out_of_the_message(self):
        error = to_api_error(psycopg.OperationalError("connection to server at 10.0.0.5 failed: password"))
        assert "10.0.0.5" not in error.message

    def test_unexpected_errors_are_not_explained(self):
        assert to_api_error(KeyError("x")) is None

    @pytest.mark.parametrize(("seconds", "header"), [(0, "1"), (0.01, "1"), (1.0, "1"), (1.2, "2"), (30, "30")])
    def test_retry_after_is_whole_seconds_rounded_up(self, seconds, header):
        assert retry_after(seconds) == header


class TestContentType:
    @pytest.mark.parametrize(
        "value", ["application/json", "Application/JSON", "application/json; charset=utf-8", "application/vnd.a+json"]
    )
    def test_json_is_accepted(self, value):
        check_content_type(value)

    @pytest.mark.parametrize(
        "value", [None, "", "text/plain", "text/json", "application/xml", "application/json; charset=latin-1"]
    )
    def test_anything_else_is_415(self, value):
        with pytest.raises(ApiError) as info:
            check_content_type(value)
        assert (info.value.status, info.value.code) == (415, "unsupported_media_type")


def validate(body: dict) -> ApiError | PlaceOrderRequest:
    import json

    try:
        return PlaceOrderRequest.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        return from_validation_error(exc)


class TestPlaceOrderRequest:
    def test_valid_body_becomes_the_domain_command(self):
        parsed = validate({"user_id": str(USER), "flash_sale_id": str(SALE), "quantity": 2})
        command = parsed.to_command()
        assert (command.user_id, command.flash_sale_id, command.quantity) == (USER, SALE, 2)

    @pytest.mark.parametrize("quantity", [0, -5, 2**31, 1.5, "1", True, None, [1]])
    def test_a_bad_quantity_alone_is_invalid_quantity(self, quantity):
        error = validate({"user_id": str(USER), "flash_sale_id": str(SALE), "quantity": quantity})
        assert (error.status, error.code) == (422, "invalid_quantity")
        assert error.message.startswith("quantity must be a whole number from 1 to 2147483647, got ")

    def test_a_huge_value_is_shortened_in_the_message(self):
        error = validate({"user_id": str(USER), "flash_sale_id": str(SALE), "quantity": "9" * 500})
        assert len(error.message) < 120

    def test_other_problems_are_invalid_request_naming_each_field(self):
        error = validate({"user_id": "nope", "quantity": 0, "extra": 1})
        assert (error.status, error.code) == (422, "invalid_request")
        for field in ("user_id", "flash_sale_id", "quantity", "extra"):
            assert field in error.message


class TestOpenApiDocument:
    def test_every_schema_reference_resolves(self):
        doc = openapi.document()
        refs = set()

        def walk(node):
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.add(node["$ref"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(doc)
        for ref in refs:
            _, section, kind, name = ref.split("/")
            assert name in doc[section][kind], ref

    def test_every_error_response_is_the_error_model(self):
        doc = openapi.document()
        for item in doc["paths"].values():
            for operation in item.values():
                for status, response in operation["responses"].items():
                    if int(status) >= 400:
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}

    def test_every_route_of_the_app_is_documented_and_every_operation_routed(self):
        """The app's routes and the document's operations are the same (method, path) pairs, but for the document
        itself: a route added to `create_app` or an operation added to the document alone fails here."""
        from starlette.routing import Route

        from flashsale.http import create_app

        app = create_app("postgresql://nobody@localhost/unused")  # the database is only reached at startup
        assert all(isinstance(route, Route) for route in app.routes)  # no mount whose routes this would not see
        routed = {
            (method.lower(), route.path)
            for route in app.routes
            if isinstance(route, Route)
            for method in route.methods or ()
            if method != "HEAD"  # Starlette's, beside every GET
        }
        documented = {(method, path) for path, item in openapi.document()["paths"].items() for method in item}
        assert routed - {("get", contract.OPENAPI_PATH)} == documented

    def test_quotes_the_idempotency_policy_where_it_is_written(self):
        (parameter,) = openapi.document()["paths"][contract.ORDERS_PATH]["post"]["parameters"]
        assert parameter["name"] == contract.IDEMPOTENCY_KEY_HEADER
        assert idempotency.POLICY in parameter["description"]


def parse_service(argv: list[str], *, for_load: bool = False):
    from flashsale.http.settings import ServiceSettings

    parser = argparse.ArgumentParser()
    ServiceSettings.add_arguments(parser, for_load=for_load)
    return ServiceSettings.from_args(parser.parse_args(argv), for_load=for_load)


class TestServiceSettings:
    """One settings object for the service: refused once, naming each setting as its reader knows it (its field in
    Python, its option on the command line), and the same value through `serve`'s options and back."""

    @pytest.mark.parametrize(
        ("changes", "field_message", "option_message"),
        [
            ({"accept": "async"}, "accept async needs the order queue", "--accept async needs the order queue"),
            ({"user_rate": float("nan")}, "user rate must be 0", "--user-rate must be 0"),
            ({"accept": "async", "queue_size": 5, "pool_size": 1}, "pool size 1, queue workers 1", "--pool-size 1"),
            ({"drain_timeout_s": -1.0}, "drain timeout s must be 0 or more", "--drain-timeout must be 0 or more"),
            ({"admission": "redis"}, "admission redis shares user rate", "--admission redis shares --user-rate"),
            (
                {"admission": "redis", "queue_size": 5},  # a synchronous queue stays in its process
                "with accept async, queue size: give one",
                "with --accept async, --queue-size: give one",
            ),
            ({"user_burst": 5.0}, "user burst needs user rate", "--user-burst needs --user-rate"),
            ({"claim_after_s": 0.0}, "claim after s must be positive", "--claim-after must be positive"),
        ],
    )
    def test_refused_with_the_setting_named_as_the_caller_says_it(self, changes, field_message, option_message):
        from flashsale.http.settings import InvalidSetting, ServiceSettings

        with pytest.raises(InvalidSetting, match=field_message):
            ServiceSettings(**changes)
        argv = []
        for field, value in changes.items():  # the same values, typed as options
            argv += ServiceSettings.__dataclass_fields__[field].metadata["option"], str(value)
        with pytest.raises(ValueError, match=option_message):
            parse_service(argv)

    def test_a_load_run_names_the_service_options_as_flashsale_load_does(self):
        with pytest.raises(ValueError, match="--accept async needs the order queue: give --queue-size"):
            parse_service(["--service-workers", "2", "--accept", "async"], for_load=True)
        assert parse_service(["--service-workers", "3", "--queue-size", "7"], for_load=True).load_params() == {
            "service_workers": 3, "queue_size": 7, "queue_workers": 1, "user_rate": 0.0, "user_burst": 0.0,
            "accept": "sync", "admission": "local",
        }  # fmt: skip

    def test_settings_survive_the_trip_through_serve_options(self):
        from flashsale.http.settings import ServiceSettings

        settings = ServiceSettings(
            port=9001, strategy="atomic", pool_size=5, pool_timeout_s=0.25, workers=2, drain_timeout_s=1.5,
            queue_size=9, queue_workers=2, user_rate=2.5, accept="async", access_log=False,
        )  # fmt: skip
        assert parse_service(settings.to_args()) == settings
        assert ServiceSettings().to_args() == []  # defaults are left to serve

    def test_good_settings_pass(self):
        from flashsale.http.settings import ServiceSettings

        ServiceSettings(pool_size=4, max_waiting=0)
        ServiceSettings(pool_size=4, queue_size=5, accept="async")  # a queue, more connections than workers
