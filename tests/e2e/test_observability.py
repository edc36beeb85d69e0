"""Request ids, the structured access log and `/metrics`, read from the real server."""

from __future__ import annotations

import time
import uuid

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api
from tests.e2e.conftest import POOL_SIZE, make_sale


def scrape(api) -> dict[tuple[str, frozenset], float]:
    """Every sample of `/metrics`, keyed by (sample name, labels)."""
    reply = api.get("/metrics")
    assert reply.status == 200
    assert reply.header("content-type").startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_counted(samples, route: str, status: int, method: str) -> float:
    return value(
        samples, "flashsale_http_request_duration_seconds_count", method=method, route=route, status=str(status)
    )


class TestRequestId:
    def test_a_sane_caller_id_is_echoed(self, api):
        reply = api.get("/health", headers={"X-Request-ID": "load-run-7/req-42"})
        assert reply.header("x-request-id") == "load-run-7/req-42"

    @pytest.mark.parametrize("sent", [None, "", "has space", "x" * 129, "ünïcode"])
    def test_a_missing_or_unsafe_id_is_replaced_by_a_uuid(self, api, sent):
        reply = api.get("/health", headers={} if sent is None else {"X-Request-ID": sent})
        returned = reply.header("x-request-id")
        assert returned != sent
        assert uuid.UUID(returned).version == 4

    def test_errors_carry_it_too(self, api):
        reply = api.get("/nope", headers={"X-Request-ID": "abc-123"})
        assert (reply.status, reply.header("x-request-id")) == (404, "abc-123")

    def test_each_request_gets_its_own(self, api):
        ids = {api.get("/health").header("x-request-id") for _ in range(5)}
        assert len(ids) == 5


class TestAccessLog:
    def test_one_json_line_per_request_with_its_id(self, api, server, sale):
        rid = f"test-{uuid.uuid4()}"
        sent = time.perf_counter()
        reply = api.order(sale.user_ids[0], sale.id, headers={"X-Request-ID": rid})
        round_trip_ms = (time.perf_counter() - sent) * 1000
        assert reply.status == 201

        lines = server.wait_for_log(lambda line: line.get("request_id") == rid)
        assert len(lines) == 1
        line = lines[0]
        assert line["logger"] == "flashsale.http.access"
        assert (line["method"], line["route"], line["path"], line["status"]) == (
            "POST",
            "/api/orders",
            "/api/orders",
            201,
        )
        # The server's timing lies within the client's round trip; it is logged rounded to the microsecond.
        assert 0 < line["duration_ms"] <= round_trip_ms + 0.001
        assert line["level"] == "info"

    def test_unknown_paths_are_logged_under_one_route(self, api, server):
        rid = f"test-{uuid.uuid4()}"
        api.get("/wp-admin/login.php", headers={"X-Request-ID": rid})
        (line,) = server.wait_for_log(lambda line: line.get("request_id") == rid)
        assert (line["route"], line["path"], line["status"]) == ("unmatched", "/wp-admin/login.php", 404)

    def test_can_be_turned_off(self, database_url, tmp_path):
        with ServerProcess(access_log=False, pool_size=1, log_path=tmp_path / "serve.log") as quiet:
            assert Api(quiet.url).get("/users").status == 200
            lines = quiet.log_lines()
        assert not [line for line in lines if line["logger"] == "flashsale.http.access"]
        assert any(line["message"] == "ready" for line in lines)  # the rest of the log is still there


class TestMetrics:
    def test_counts_what_was_sent_by_route_status_and_outcome(self, api, database_url):
        sale = make_sale(database_url, users=4, inventory=3, per_user_limit=1)
        before = scrape(api)

        created = [api.order(user, sale.id).status for user in sale.user_ids[:2]]
        limit = api.order(sale.user_ids[0], sale.id).status  # while stock remains: the limit refuses it
        created.append(api.order(sale.user_ids[2], sale.id).status)
        sold_out = api.order(sale.user_ids[3], sale.id).status
        invalid = [api.order(sale.user_ids[0], sale.id, quantity=0).status for _ in range(2)]
        unknown = [api.get("/nope").status for _ in range(3)]
        sale_reads = [api.get(f"/api/flash-sales/{sale.id}").status for _ in range(2)]

        after = scrape(api)
        assert (created, sold_out, limit, invalid, unknown, sale_reads) == (
            [201] * 3,
            409,
            409,
            [422] * 2,
            [404] * 3,
            [200] * 2,
        )

        def delta(route, status, method="POST"):
            return requests_counted(after, route, status, method) - requests_counted(before, route, status, method)

        assert delta("/api/orders", 201) == 3
        assert delta("/api/orders", 409) == 2
        assert delta("/api/orders", 422) == 2
        assert delta("unmatched", 404, "GET") == 3
        assert delta("/api/flash-sales/{flash_sale_id}", 200, "GET") == 2

        def outcome(name):
            key = "flashsale_orders_total"
            return value(after, key, strategy="pessimistic", outcome=name) - value(
                before, key, strategy="pessimistic", outcome=name
            )

        assert [outcome(o) for o in ("created", "sold_out", "per_user_limit_exceeded", "invalid_quantity")] == [
            3,
            1,
            1,
            2,
        ]

    def test_histogram_buckets_are_cumulative_and_end_at_the_count(self, api):
        api.get("/health")
        samples = scrape(api)
        labels = {"method": "GET", "route": "/health", "status": "200"}
        buckets = sorted(
            (float(dict(key)["le"]), v)
            for (name, key), v in samples.items()
            if name == "flashsale_http_request_duration_seconds_bucket"
            and {k: v for k, v in dict(key).items() if k != "le"} == labels
        )
        counts = [v for _, v in buckets]
        assert counts == sorted(counts)
        assert buckets[-1] == (float("inf"), value(samples, "flashsale_http_request_duration_seconds_count", **labels))
        assert value(samples, "flashsale_http_request_duration_seconds_sum", **labels) > 0

    def test_pool_statistics_are_exported(self, api):
        samples = scrape(api)
        assert value(samples, "flashsale_pool_connections", pool="flashsale") == POOL_SIZE
        assert value(samples, "flashsale_pool_max_connections", pool="flashsale") == POOL_SIZE
        assert 0 <= value(samples, "flashsale_pool_available_connections", pool="flashsale") <= POOL_SIZE
        assert value(samples, "flashsale_pool_requests_total", pool="flashsale") >= 1
        assert value(samples, "flashsale_pool_connection_attempts_total", pool="flashsale") >= POOL_SIZE

    def test_process_metrics_are_exported(self, api, server):
        """The service's own CPU time, as the kernel counts it (psutil reads the same counters) around the scrape."""
        process = psutil.Process(server.pid)
        before_s = sum(process.cpu_times()[:2])
        samples = scrape(api)
        after_s = sum(process.cpu_times()[:2])
        tick_rounding_s = 1e-6  # both add up user and system seconds from the same ticks, maybe in another order
        assert before_s - tick_rounding_s <= value(samples, "process_cpu_seconds_total") <= after_s + tick_rounding_s
