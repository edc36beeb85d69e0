"""pyproject.toml and environment.yml must list the same dependencies, so pip and conda users get one project."""

import re
import tomllib

import yaml

from flashsale.config import PROJ_ROOT


def _name(requirement: str) -> str:
    name = re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}

    env = yaml.safe_load((PROJ_ROOT / "environment.yml").read_text())
    conda, pip = set(), []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            pip = item["pip"]
        else:
            conda.add(_name(item))
    listed = (conda - {"python", "pip"}) | {_name(r) for r in pip if not r.startswith("-e")}

    assert listed == wanted
    assert "conda-forge" in env["channels"]
    assert "python=3.11" in env["dependencies"]
    assert "-e .[dev]" in pip
