"""Source notebooks are committed clean: no outputs, one `parameters` cell with a typed default and a comment per
line, and no derived values in it."""

import ast

import nbformat
import pytest

from flashsale.config import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_the_numbered_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["1.0-devlog-baseline", "2.0-concurrency", "3.0-lock-contention"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
class TestSourceNotebook:
    def test_has_no_outputs(self, path):
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert dirty == []

    def test_has_one_parameters_cell_of_typed_literals(self, path):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        lines = [line for line in tagged[0].source.splitlines() if line.strip()]
        for line in lines:
            assert "#" in line, f"no comment: {line}"
            statement = ast.parse(line.split("  #")[0]).body[0]
            assert isinstance(statement, ast.AnnAssign), f"not a typed default: {line}"
            ast.literal_eval(statement.value)  # a literal, not a derived value

    def test_pins_the_kernel(self, path):
        assert nbformat.read(path, as_version=4).metadata.kernelspec.name == "python3"
