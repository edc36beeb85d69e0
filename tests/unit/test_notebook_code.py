"""The notebooks keep calls and prose: at most 35 lines of code each outside the parameters cell, and no parsing of
stored JSON (the tidy tables and `flashsale.experiments.analysis` give every number)."""

import nbformat
import pytest

from flashsale.config import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
MAX_LINES = 35


def code_lines(path):
    nb = nbformat.read(path, as_version=4)
    return [
        line
        for cell in nb.cells
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", [])
        for line in cell.source.splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
class TestThinNotebook:
    def test_has_at_most_35_lines_of_code_besides_its_parameters(self, path):
        assert len(code_lines(path)) <= MAX_LINES

    def test_parses_no_json(self, path):
        assert not [line for line in code_lines(path) if "json.loads" in line or "import json" in line]

    def test_declares_the_workers_parameter(self, path):
        tagged = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
        assert "workers: int = 0" in tagged[0].source
