"""redis-benchmark as the reference line of the strategies that decide in Redis: its options for a server, the
command built from a plan, its report read, and what happens where it is not installed (no server needed)."""

import pytest

from flashsale import strategies
from flashsale.load import redis_benchmark
from flashsale.load.redis_benchmark import RedisBenchmarkFailed, RedisBenchmarkMissing
from flashsale.strategies import RedisBenchmarkPlan

REPORT = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
    '"max_latency_ms"\n"EVALSHA abc 3 a b c","19607.84","0.177","0.032","0.167","0.303","0.623","5.263"\n'
)


class TestServerOptions:
    def test_a_unix_socket_with_its_password_and_database(self):
        url = "unix:///tmp/v.sock?password=s%20ecret&db=2"
        assert redis_benchmark.server_options(url) == ["-s", "/tmp/v.sock", "-a", "s ecret", "--dbnum", "2"]

    def test_a_tcp_url_is_given_as_is(self):
        url = "redis://:pw@127.0.0.1:6380/1"
        assert redis_benchmark.server_options(url) == ["-u", url]


class TestCommand:
    def test_the_gates_plan_sends_its_decide_script_with_the_sale_filled_in(self):
        plan = strategies.get_strategy("redis_gate").reference_plan(16)
        assert isinstance(plan, RedisBenchmarkPlan)
        assert (plan.kind, plan.clients) == ("redis-benchmark", 16)
        assert "redis.call('HINCRBY', KEYS[1], 'stock', -quantity)" in plan.script
        sent = redis_benchmark.command(plan, "abc", {"sale": "S", "now_us": "7", "quantity": "2"})
        assert sent == [
            "EVALSHA", "abc", "3",
            "flashsale:gate:{S}:state", "flashsale:gate:{S}:buyers", "flashsale:gate:{S}:keys",
            "7", "user:__rand_int__", "2", "", "redis-benchmark",
        ]  # fmt: skip

    def test_a_missing_variable_is_an_error(self):
        plan = strategies.get_strategy("redis_gate").reference_plan(1)
        with pytest.raises(KeyError, match="now_us"):
            redis_benchmark.command(plan, "abc", {"sale": "S", "quantity": "1"})

    def test_the_gate_has_no_lookup_variant(self):
        with pytest.raises(ValueError, match="one variant"):
            strategies.get_strategy("redis_gate").reference_plan(1, variant="lookup")


class TestReport:
    def test_the_figures_of_the_one_row(self):
        assert redis_benchmark.parse_csv(REPORT) == {
            "rps": 19607.84,
            "latency_avg_ms": 0.177,
            "latency_p50_ms": 0.167,
            "latency_p95_ms": 0.303,
            "latency_p99_ms": 0.623,
        }

    def test_no_row_is_a_failure(self):
        with pytest.raises(RedisBenchmarkFailed, match="0 result rows"):
            redis_benchmark.parse_csv(REPORT.splitlines()[0])


class TestWhereItIsMissing:
    def test_it_says_so_instead_of_failing_later(self, monkeypatch, tmp_path):
        monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without redis-benchmark
        plan = strategies.get_strategy("redis_gate").reference_plan(1)
        with pytest.raises(RedisBenchmarkMissing, match="apt install redis-tools"):
            redis_benchmark.run_redis_benchmark("unix:///nowhere.sock", plan, users=1, variables={})
