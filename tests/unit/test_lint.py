"""The code base stays ruff-clean (the rules are in pyproject.toml), notebooks included, so style slips fail in CI, not
in review."""

import shutil
import subprocess
import sys
from pathlib import Path

from flashsale.config import PROJ_ROOT


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run(
        [ruff, "check", "--output-format", "concise", "flashsale", "tests", "benchmarks", "notebooks"],
        cwd=PROJ_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
