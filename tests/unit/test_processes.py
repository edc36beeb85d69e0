"""The one child-process helper: a child's failure carries the end of its log, and `stop()` ends it by its pid,
killing one that ignores SIGTERM."""

from __future__ import annotations

import signal
import sys

import psutil
import pytest

from flashsale.processes import ChildFailed, ChildProcess
from tests.waiting import wait_for


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_exited_fails_with_the_last_lines_of_its_log(tmp_path):
    printing = "import sys\nfor n in range(8): print(f'line {n}')\nsys.exit(3)"
    child = ChildProcess("printer", python(printing), log=tmp_path / "printer.log", role="service")
    wait_for(lambda: child.poll() is not None, "the child to exit")
    with pytest.raises(ChildFailed, match=r"^printer \(pid \d+\) exited with status 3:\nline 3\n") as failed:
        child.check_alive()
    assert str(failed.value).splitlines()[1:] == [f"line {n}" for n in range(3, 8)]  # the last five
    assert (failed.value.role, failed.value.output.count("\n")) == ("service", 8)
    assert child.stop() == 3


def test_stop_ends_a_child_by_sigterm_and_kills_one_that_ignores_it(tmp_path):
    ready = tmp_path / "ready"
    stubborn = ChildProcess(
        "stubborn",
        python(
            "import signal, pathlib, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(600)"
        ),
    )
    polite = ChildProcess("polite", python("import time; time.sleep(600)"))
    wait_for(ready.exists, "the stubborn child to ignore SIGTERM")
    stubborn.check_alive()  # alive: nothing raised
    assert polite.stop() == -signal.SIGTERM
    assert stubborn.stop(timeout=0.2) == -signal.SIGKILL
    assert not psutil.pid_exists(stubborn.pid)
    assert not psutil.pid_exists(polite.pid)
    assert stubborn.stop() == -signal.SIGKILL  # again: the same status, nothing sent
