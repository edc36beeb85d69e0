"""The package type-checks with mypy (settings in pyproject.toml) and the benchmarks stay ruff-clean, as `make lint`
checks; mypy is a declared dev tool in both pyproject.toml and environment.yml."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from flashsale.config import PROJ_ROOT


def tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def test_mypy_is_clean_on_the_package():
    proc = subprocess.run([tool("mypy")], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean_on_the_benchmarks():
    for command in (["check", "--output-format", "concise"], ["format", "--check"]):
        proc = subprocess.run([tool("ruff"), *command, "benchmarks"], cwd=PROJ_ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_a_dev_tool_for_pip_and_conda_alike():
    dev = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    conda = yaml.safe_load((PROJ_ROOT / "environment.yml").read_text())["dependencies"]
    assert "mypy>=1.10" in dev
    assert "mypy>=1.10" in conda
