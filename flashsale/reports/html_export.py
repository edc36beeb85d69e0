"""Executed notebook -> HTML report with the code hidden (nbconvert's `--no-input`)."""

from __future__ import annotations

from pathlib import Path


def export_html(executed: Path, html: Path) -> Path:
    """Write `html` from the executed notebook: outputs only, no code, no prompts, no stderr streams."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            # Progress bars and library chatter go to stderr; a report shows results, not logs.
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    title = nb.metadata.get("title") or _first_heading(nb) or executed.stem
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


def _first_heading(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None
