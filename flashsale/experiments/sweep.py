"""A sweep: the notebooks of a sweep file, each measured (a progress bar over its grid), executed by papermill
from the data, exported to HTML without code, and listed in reports/index.html."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flashsale import config
from flashsale.experiments.plans import measure as measure_cells
from flashsale.experiments.plans import plan
from flashsale.reports import execute_notebook, export_html, write_index
from flashsale.reports.notebook_runner import notebook_path

SWEEPS_DIR = config.PROJ_ROOT / "sweeps"
DEFAULT_SWEEP = SWEEPS_DIR / "default.yaml"


@dataclass
class NotebookRun:
    notebook: str
    parameters: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what an override changed beyond what it named
    skipped: str | None = None  # why this notebook is left out of the sweep (it is neither measured nor rendered)

    def report_name(self, sweep: str) -> str:
        return f"{sweep}--{self.notebook}"

    def resolved(self) -> dict[str, Any]:
        """The notebook's own defaults (from its parameters cell), updated with the sweep's values."""
        return {**declared_parameters(self.notebook), **self.parameters}


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def declared_parameters(notebook: str) -> dict[str, Any]:
    """Name -> default value of the notebook's `parameters` cell."""
    import ast

    import papermill

    found = papermill.inspect_notebook(str(notebook_path(notebook)))
    return {name: ast.literal_eval(spec["default"]) for name, spec in found.items()}


@dataclass
class Sweep:
    name: str
    runs: list[NotebookRun] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = DEFAULT_SWEEP) -> Sweep:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no sweep file {path}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("notebooks"), list):
            raise ValueError(f"{path}: expected a mapping with a `notebooks:` list")
        common = raw.get("parameters") or {}  # for every notebook that declares them; its own entry wins
        if not isinstance(common, dict):
            raise ValueError(f"{path}: `parameters:` must be a mapping of parameter names to values")
        runs = []
        unclaimed = set(common)
        for item in raw["notebooks"]:
            if not isinstance(item, dict) or "notebook" not in item:
                raise ValueError(f"{path}: each entry of `notebooks:` needs a `notebook:` name")
            declared = declared_parameters(item["notebook"])  # also: is there such a notebook
            shared = {k: v for k, v in common.items() if k in declared}
            unclaimed -= set(shared)
            run = NotebookRun(item["notebook"], {**shared, **dict(item.get("parameters") or {})})
            unknown = set(run.parameters) - set(declared)
            if unknown:
                raise ValueError(f"{path}: notebook {run.notebook} has no parameter {', '.join(sorted(unknown))}")
            runs.append(run)
        if unclaimed and runs:
            raise ValueError(f"{path}: no notebook has the parameter {', '.join(sorted(unclaimed))} of `parameters:`")
        return cls(name=str(raw.get("name") or Path(path).stem), runs=runs)

    def override(self, **overrides: Any) -> Sweep:
        """Set each given parameter in every notebook that declares it with the same kind of value (None leaves
        it alone): `--vus 1,2,4` sets the levels of the sweep, not the seed's single VU count of the baseline."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for run in self.runs:
            declared = declared_parameters(run.notebook)
            before = run.resolved()
            run.parameters.update({k: v for k, v in given.items() if k in declared and _same_kind(v, declared[k])})
            if "faults" in declared and "faults" not in given:
                scale_faults(run, before)
        return self

    def skip_unplannable(self) -> list[NotebookRun]:
        """Leave out (with the reason in `skipped`) every notebook whose parameters make no valid run, so that one
        notebook an override does not suit does not stop the others; returns the runs left out."""
        for run in self.runs:
            if run.skipped is None:
                try:
                    plan(run.notebook, _with_strategies(run.resolved()))
                except ValueError as exc:
                    run.skipped = str(exc)
        return [run for run in self.runs if run.skipped is not None]


def scale_faults(run: NotebookRun, before: dict[str, Any]) -> None:
    """A notebook's fault times are moments of its run: when an override changes the run's length, move them (and
    each outage) by the same factor, so that `--duration 2s` restarts the database at the same point of a shorter
    run instead of after its end. The change is noted in `run.notes`."""
    old, new = before.get("duration_s"), run.resolved().get("duration_s")
    faults = before.get("faults") or []
    if not faults or not old or not new or old == new:
        return
    from flashsale.load.faults import Fault

    factor = new / old
    scaled = [
        str(Fault(f.kind, round(f.at_s * factor, 3), round(f.down_s * factor, 3))) for f in map(Fault.parse, faults)
    ]
    run.parameters["faults"] = scaled
    run.notes.append(f"faults scaled to the {new:g} s run: {', '.join(faults)} -> {', '.join(scaled)}")


def _with_strategies(params: dict[str, Any]) -> dict[str, Any]:
    """An empty `strategies` list means every strategy of the catalogue."""
    from flashsale import strategies

    if "strategies" in params and not params["strategies"]:
        return {**params, "strategies": strategies.names()}
    return params


def measure(sweep: Sweep, *, progress: bool = True, fresh: bool = False) -> None:
    """Run every cell the sweep's notebooks (but those skipped) need and that data/ does not hold yet (`fresh`:
    every cell, measured again over what data/ holds)."""
    for run in sweep.runs:
        if run.skipped is not None:
            continue
        planned = plan(run.notebook, _with_strategies(run.resolved()))
        if planned is None:
            continue
        dataset, cells = planned
        if progress:
            print(f"{run.notebook}: {len(cells)} runs into data/{dataset.name}/", file=sys.stderr)
        measure_cells(run.notebook, dataset, cells, allow_load=True, progress=progress, fresh=fresh)


def render(sweep: Sweep, *, reports_dir: Path = config.REPORTS_DIR) -> list[Path]:
    """Execute every notebook (but those skipped) from data alone and export it; returns the HTML pages (index.html
    last)."""
    pages = []
    for run in sweep.runs:
        if run.skipped is not None:
            continue
        name = run.report_name(sweep.name)
        executed = execute_notebook(
            run.notebook, {**run.parameters, "allow_load": False}, output=reports_dir / "runs" / f"{name}.ipynb"
        )
        pages.append(export_html(executed, reports_dir / f"{name}.html"))
    pages.append(write_index(reports_dir))
    return pages


def rerender_all(*, reports_dir: Path = config.REPORTS_DIR, notebooks: list[str] | None = None) -> list[Path]:
    """`flashsale report`: every executed notebook under reports/runs/ again (or only those of `notebooks`), with
    the parameters it was run with, from data/ alone; the default sweep's notebooks when there are none yet."""
    import nbformat

    executed = sorted((reports_dir / "runs").glob("*--*.ipynb"))
    if not executed:
        return render(Sweep.load(), reports_dir=reports_dir)
    if notebooks:
        executed = [path for path in executed if path.stem.split("--", 1)[1] in notebooks]
        if not executed:
            raise ValueError(f"no executed notebook named {', '.join(notebooks)} under {reports_dir / 'runs'}")
    pages = []
    for path in executed:
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        notebook = Path(meta.get("input_path") or path.name.split("--", 1)[1]).stem
        parameters = {**(meta.get("parameters") or {}), "allow_load": False}
        execute_notebook(notebook, parameters, output=path)
        pages.append(export_html(path, reports_dir / f"{path.stem}.html"))
    pages.append(write_index(reports_dir))
    return pages
