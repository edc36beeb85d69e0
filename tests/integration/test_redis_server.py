"""`flashsale redis ...` run as a user runs it, on real servers: the embedded Valkey of a project directory of the
test's own (FLASHSALE_HOME), the session's test server through FLASHSALE_REDIS_URL, and Debian's redis-server, a
server the project did not start, where it is installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis

from flashsale import aio, processes
from flashsale.admission import RateLimited
from flashsale.admission.order_stream import OrderStream
from flashsale.admission.shared_rate_limit import SharedRateLimiter
from flashsale.kv import connection, embedded
from flashsale.serving.server_process import free_port
from flashsale.testing import TEST_REDIS_URL_ENV, TestRedis
from tests.integration.test_cli import flashsale
from tests.waiting import HANG_S, wait_for


@dataclass(frozen=True)
class Home:
    """A project state directory of the test's own, and the environment that points the command at it."""

    env: dict[str, str]
    data_dir: Path

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return flashsale("redis", *args, env={**self.env, **env}, check=check)

    def json(self, *args: str, **env: str) -> dict:
        return json.loads(self.run(*args, "--json", **env).stdout)


@pytest.fixture
def home(tmp_path):
    """FLASHSALE_HOME in a temporary directory, without FLASHSALE_REDIS_URL (the session's `redis_url` may have set
    it); whatever embedded Valkey the test left there is stopped by its pid at the end."""
    data_dir = tmp_path / "valkey"
    yield Home(env={"FLASHSALE_HOME": str(tmp_path), "FLASHSALE_REDIS_URL": ""}, data_dir=data_dir)
    embedded.stop(data_dir)


async def exercise(url: str) -> None:
    """What the project will ask of any server: plain keys, a Lua script run atomically, a stream."""
    async with connection.connect(url, decode_responses=True) as client:
        await client.set("flashsale:test:stock", 50)
        assert await client.get("flashsale:test:stock") == "50"
        take = "local left = redis.call('DECRBY', KEYS[1], ARGV[1]) return left >= 0 and left or -1"
        assert await client.eval(take, 1, "flashsale:test:stock", 20) == 30
        entry = await client.xadd("flashsale:test:orders", {"user": "u1", "quantity": "1"})
        assert (await client.xrange("flashsale:test:orders", min=entry, max=entry))[0][1] == {
            "user": "u1",
            "quantity": "1",
        }
        await client.delete("flashsale:test:stock", "flashsale:test:orders")
    await exercise_shared_admission(url)


async def exercise_shared_admission(url: str) -> None:
    """Shared admission's scripts and stream commands (`--admission redis`): TIME in a script, XAUTOCLAIM's reply."""
    async with connection.connect(url) as client:
        where = f"test-{uuid.uuid4().hex[:8]}"
        limiter = SharedRateLimiter(client, 0.01, burst=2, namespace=where)
        await limiter.admit("u1")
        await limiter.admit("u1")
        with pytest.raises(RateLimited):
            await limiter.admit("u1")
        stream = OrderStream(client, namespace=where, size=1)
        await stream.ensure_group()
        order_id = uuid.uuid4()
        assert await stream.add(order_id) is not None
        assert await stream.add(uuid.uuid4()) is None  # full
        assert [e.order_id for e in await stream.read("a", block_ms=100)] == [order_id]
        (claimed,) = await stream.claim_idle("b", min_idle_ms=0)
        assert await stream.done(claimed.entry_id)
        assert (await stream.length(), await stream.pending()) == (0, 0)
        await client.delete(stream.key, limiter.key("u1"))


class TestEmbeddedValkey:
    def test_up_starts_valkey_9_and_status_reports_it(self, home):
        assert home.json("status") == {"running": False, "embedded": True, "data_dir": str(home.data_dir)}
        up = home.json("up")
        assert (up["embedded"], up["started"], up["server"]) == (True, True, "valkey")
        assert up["version"].startswith("9.")
        assert psutil.Process(up["pid"]).name() == embedded.SERVER_NAME
        assert psutil.Process(up["pid"]).net_connections(kind="inet") == []  # its socket only, no TCP port
        status = home.json("status")
        assert (status["running"], status["pid"], status["url"]) == (True, up["pid"], up["url"])
        assert (status["server"], status["version"], status["supported"]) == ("valkey", up["version"], True)
        assert home.run("url").stdout.strip() == up["url"]
        aio.run(exercise(up["url"]))

    def test_up_again_reuses_the_running_server(self, home):
        first = home.json("up")
        again = home.run("up").stdout
        assert f"(embedded, pid {first['pid']}, already running)" in again
        assert home.json("up") == {**first, "started": False}

    def test_down_stops_the_server_by_its_pid(self, home):
        pid = home.json("up")["pid"]
        assert home.json("down") == {"stopped": pid}
        assert processes.exited(pid)
        assert not embedded.socket_path(home.data_dir).exists()
        assert home.json("status")["running"] is False
        assert home.run("down").stdout.strip() == "embedded Valkey was not running"

    def test_a_killed_server_is_not_taken_for_running_and_up_starts_another(self, home):
        """SIGKILL leaves the pid file and the socket behind; neither makes a dead server look alive."""
        killed = home.json("up")["pid"]
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: processes.exited(killed), f"valkey-server {killed} to die")
        assert embedded.socket_path(home.data_dir).exists()
        assert home.json("status")["running"] is False
        up = home.json("up")
        assert up["started"] is True
        assert up["pid"] != killed

    def test_a_zombie_is_not_taken_for_running(self, tmp_path):
        """A killed daemon stays a zombie until the process that adopted it collects it (in a container, it may
        never); the server run here, in the foreground, is this process's child, so it stays one until `wait()`."""
        data_dir = tmp_path / "valkey"
        data_dir.mkdir()
        binary = str(embedded.server_binary())
        server = subprocess.Popen([binary, str(embedded.write_config(data_dir)), "--daemonize", "no"])
        try:
            wait_for(lambda: embedded.running(data_dir) is not None, "valkey-server to write its pid file")
            server.kill()
            wait_for(lambda: psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE, "a zombie")
            assert embedded.running(data_dir) is None
        finally:
            server.kill()
            server.wait(timeout=HANG_S)

    def test_a_directory_too_deep_for_a_socket_gets_one_in_the_temporary_directory(self, tmp_path):
        data_dir = tmp_path / ("deep-" * 20) / "valkey"
        try:
            info = embedded.start(data_dir)
            assert info.socket.parent != data_dir
            assert len(str(info.socket)) <= 100
            aio.run(exercise(info.url()))
        finally:
            embedded.stop(data_dir)


class TestTheTestServer:
    def test_it_is_stopped_by_its_pid_and_deleted_and_the_url_given_back(self, monkeypatch):
        """What the session's `redis_url` does at its end, done here in one test."""
        monkeypatch.delenv(TEST_REDIS_URL_ENV, raising=False)
        monkeypatch.setenv("FLASHSALE_REDIS_URL", "redis://someone-elses:6379")
        test_redis = TestRedis()
        with test_redis as url:
            assert os.environ["FLASHSALE_REDIS_URL"] == url
            assert test_redis.data_dir is not None
            info = embedded.running(test_redis.data_dir)
            assert info is not None
            aio.run(exercise(url))
        assert processes.exited(info.pid)
        assert not test_redis.data_dir.exists()
        assert os.environ["FLASHSALE_REDIS_URL"] == "redis://someone-elses:6379"


class TestAnotherServer:
    def test_with_redis_url_up_and_down_start_and_stop_nothing(self, home, redis_url):
        up = home.json("up", FLASHSALE_REDIS_URL=redis_url)
        assert (up["url"], up["embedded"], up["started"], up["pid"]) == (redis_url, False, False, None)
        assert home.run("url", FLASHSALE_REDIS_URL=redis_url).stdout.strip() == redis_url
        assert home.json("status", FLASHSALE_REDIS_URL=redis_url)["embedded"] is False
        stopped = home.run("down", FLASHSALE_REDIS_URL=redis_url).stdout.strip()
        assert stopped == "FLASHSALE_REDIS_URL is set: the external server is not ours to stop"
        assert not home.data_dir.exists()
        aio.run(exercise(redis_url))  # still up

    @pytest.mark.parametrize(
        ("url", "command", "status", "says"),
        [
            ("postgresql://localhost/flashsale", "url", 2, "FLASHSALE_REDIS_URL=postgresql://localhost/flashsale is "),
            ("redis://127.0.0.1:1", "up", 3, "cannot reach Redis at redis://127.0.0.1:1: "),
            ("redis://:s3cret@127.0.0.1:1/0", "status", 3, "cannot reach Redis at redis://:***@127.0.0.1:1/0: "),
        ],
    )
    def test_a_bad_url_is_refused_in_one_line(self, home, url, command, status, says):
        proc = home.run(command, check=False, FLASHSALE_REDIS_URL=url)
        assert proc.returncode == status
        assert proc.stderr.startswith(f"flashsale: error: {says}")
        assert proc.stderr.count("\n") == 1
        assert "s3cret" not in proc.stderr
        assert not home.data_dir.exists()

    @pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="Debian's redis-server is not installed (apt-get install redis-server); the suite does not need it",
    )
    def test_debian_redis_server_through_redis_url(self, home, tmp_path):
        port = free_port()
        log = (tmp_path / "redis-server.log").open("w")
        server = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_for(lambda: _answers(server, port), f"redis-server to answer on port {port}")
            up = home.json("up", FLASHSALE_REDIS_URL=url)
            assert (up["server"], up["embedded"], up["started"]) == ("redis", False, False)
            assert int(up["version"].split(".")[0]) >= 7
            assert home.json("status", FLASHSALE_REDIS_URL=url)["supported"] is True
            aio.run(exercise(url))
            assert home.json("down", FLASHSALE_REDIS_URL=url) == {"stopped": None}
            assert server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=HANG_S)
            log.close()


def _answers(server: subprocess.Popen, port: int) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"redis-server exited with {server.returncode} before it answered")
    try:
        with redis.Redis(port=port, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False
