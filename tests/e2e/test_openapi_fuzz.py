"""Property-based run from `/openapi.json` (schemathesis): valid and invalid requests for every operation,
with no 5xx, no response off its documented schema, status, content type or headers, and invalid data refused.

Hypothesis drives schemathesis' per-operation strategies directly: schemathesis' own pytest loader for schemas
that come from a fixture does not run under pytest 9.
"""

from __future__ import annotations

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import HookDispatcher, HookScope

from flashsale.http import openapi
from flashsale.serving.server_process import ServerProcess
from tests.e2e.conftest import make_sale

MAX_EXAMPLES = 30  # per operation and generation mode: about 300 requests, a few seconds in all
DOCUMENT = openapi.document()
# (method, path, generation mode): invalid requests only exist for operations that take some input.
CASES = [
    (method.upper(), path, mode)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "parameters" in operation or "requestBody" in operation
]


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.fixture(scope="module")
def real_ids(database_url) -> HookDispatcher:
    """Hooks that steer valid requests to real ids half the time, so that orders are also placed and sales read
    (for invalid requests they would undo the very mutation being tested, so those go without)."""
    sale = make_sale(database_url, users=20, inventory=10**6, per_user_limit=10**6)
    real = {"user_id": [str(u) for u in sale.user_ids], "flash_sale_id": [str(sale.id)]}
    hooks = HookDispatcher(scope=HookScope.TEST)

    @hooks.hook("flatmap_body")
    def real_ids_sometimes(context, body):
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in real):
            return st.just(body)
        with_real = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in real.items()})
        return st.one_of(st.just(body), with_real.map(lambda ids: {**body, **ids}))

    @hooks.hook("flatmap_path_parameters")
    def real_sale_sometimes(context, parameters):
        if not isinstance(parameters, dict) or "flash_sale_id" not in parameters:
            return st.just(parameters)
        return st.sampled_from([parameters, {**parameters, "flash_sale_id": str(sale.id)}])

    return hooks


def test_the_served_document_is_the_generated_one(api):
    assert api.get("/openapi.json").json == DOCUMENT


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: getattr(v, "value", v))
def test_operation_conforms_to_the_document(api_schema, real_ids, server, method, path, mode):
    operation = api_schema[path][method]
    hooks = real_ids if mode is GenerationMode.POSITIVE else None
    statuses = []

    @given(case=operation.as_strategy(generation_mode=mode, hooks=hooks))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def conforms(case):
        response = case.call_and_validate(base_url=server.url)
        statuses.append(response.status_code)

    conforms()
    assert statuses, "no request was sent"
    assert max(statuses) < 500
    if mode is GenerationMode.NEGATIVE:  # schemathesis judged each one; here: the run did exercise refusals
        assert any(400 <= status < 500 for status in statuses)
    elif (method, path) == ("POST", "/api/orders"):  # and valid orders on real ids were placed
        assert 201 in statuses


ORDERS = 400  # generated orders in the run that reaches the order logic


@pytest.fixture(scope="module")
def only_real_ids(database_url) -> HookDispatcher:
    """Hooks that put real ids (a user of the sale, the sale) into every generated order: a random UUID is a 404
    before any strategy runs. The per-user limit is low, so the sale's rules refuse orders too (409)."""
    sale = make_sale(database_url, users=20, inventory=10**6, per_user_limit=3)
    hooks = HookDispatcher(scope=HookScope.TEST)

    @hooks.hook("flatmap_body")
    def real_ids(context, body):
        if not isinstance(body, dict):
            return st.just(body)
        ids = st.fixed_dictionaries(
            {"user_id": st.sampled_from([str(u) for u in sale.user_ids]), "flash_sale_id": st.just(str(sale.id))}
        )
        return ids.map(lambda chosen: {**body, **chosen})

    return hooks


def test_generated_orders_are_decided_by_the_order_logic(api_schema, only_real_ids, server):
    """Valid orders from the document, with real ids: no 5xx, every answer on its documented schema, and most of
    them decided by the strategy (201 placed or replayed, 409 refused by the sale or a reused key), not stopped
    by a 404 or a 422 before it."""
    operation = api_schema["/api/orders"]["POST"]
    statuses = []

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE, hooks=only_real_ids))
    @settings(max_examples=ORDERS, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def conforms(case):
        response = case.call_and_validate(base_url=server.url)
        statuses.append(response.status_code)

    conforms()
    assert len(statuses) >= ORDERS
    assert max(statuses) < 500
    decided = sum(status in (201, 409) for status in statuses)
    assert decided / len(statuses) >= 0.9, {status: statuses.count(status) for status in set(statuses)}
    assert 201 in statuses
    assert 409 in statuses


ADMITTED_ORDERS = 150  # against a queue of 2 and a rate of 1 order a second per user: most are refused


def test_accepted_and_refused_answers_of_an_asynchronous_service_conform(database_url, only_real_ids, tmp_path):
    """Valid orders with real ids to a service with admission control and asynchronous orders (`--accept async
    --queue-size 2 --user-rate 1`) while the sale's row is held, so that settlement cannot drain the queue: the 202
    (accepted), the 429 (`rate_limited`) and the 503 (`queue_full`) answers are all met, and each is on its
    documented schema, status and headers (Retry-After included)."""
    args = ["--accept", "async", "--queue-size", "2", "--queue-workers", "1", "--user-rate", "1"]
    with ServerProcess(pool_size=4, extra_args=args, log_path=tmp_path / "serve.log") as server:
        operation = schemathesis.openapi.from_url(f"{server.url}/openapi.json")["/api/orders"]["POST"]
        statuses, errors = [], []

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE, hooks=only_real_ids))
        @settings(
            max_examples=ADMITTED_ORDERS, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
        def conforms(case):
            # A 503 is part of this service's contract (`queue_full`): its schema is checked, its class is not.
            response = case.call_and_validate(base_url=server.url, excluded_checks=[not_a_server_error])
            statuses.append(response.status_code)
            if response.status_code == 503:
                errors.append(response.json()["error"])

        with psycopg.connect(database_url) as holder:  # the sale row, held: settlement waits, the queue stays full
            holder.execute("SELECT 1 FROM flash_sales FOR NO KEY UPDATE")
            conforms()
            holder.rollback()
    assert len(statuses) >= ADMITTED_ORDERS
    assert not [status for status in statuses if status >= 500 and status != 503], statuses
    assert set(errors) == {"queue_full"}, errors  # every 503 is the full queue, not a lost database
    assert {202, 429, 503} <= set(statuses), {status: statuses.count(status) for status in set(statuses)}
