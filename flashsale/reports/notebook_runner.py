"""Run a notebook of `notebooks/` with papermill, keeping the executed copy under `reports/runs/`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from flashsale import config

# The kernel every notebook is executed with: the `python3` kernel of the environment flashsale is installed in
# (ipykernel's own spec), so a sweep never drifts to another interpreter.
KERNEL_NAME = "python3"


class NotebookFailed(RuntimeError):
    """A cell raised: the message names the executed notebook to open and the failing cell."""

    def __init__(self, notebook: Path, executed: Path, detail: str) -> None:
        super().__init__(f"notebook {notebook.name} failed: {detail}; open {executed} to see the failing cell")
        self.notebook = notebook
        self.executed = executed


def _local_kernel_manager():
    """A kernel manager on IPC sockets in a private folder (reachable by this user only; over TCP the kernel warns
    on every start that its traffic is unencrypted), and that folder."""
    from jupyter_client import KernelManager

    folder = tempfile.mkdtemp(prefix="flashsale-kernel-")
    return KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(Path(folder) / "kernel")), folder


def notebook_path(name: str) -> Path:
    """`"2.0-concurrency"` (or its file name) -> the notebook in notebooks/."""
    path = config.NOTEBOOKS_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb")))
        raise FileNotFoundError(f"no notebook {name!r} in {config.NOTEBOOKS_DIR} (known: {known})")
    return path


def execute_notebook(name: str, parameters: dict[str, Any], *, output: Path, progress_bar: bool = False) -> Path:
    """Execute `notebooks/<name>.ipynb` with `parameters` into `output`; raise NotebookFailed naming `output`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = notebook_path(name)
    output.parent.mkdir(parents=True, exist_ok=True)
    km, folder = _local_kernel_manager()
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(config.NOTEBOOKS_DIR),
            progress_bar=progress_bar,
            # IPC sockets in a private folder: the kernel is reachable by this user only (and, over TCP, it
            # would warn on every start that its traffic is unencrypted).
            km=km,
        )
    except PapermillExecutionError as exc:
        raise NotebookFailed(source, output, f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from None
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=False)
        shutil.rmtree(folder, ignore_errors=True)
    return output
