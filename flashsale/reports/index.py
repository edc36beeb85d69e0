"""`reports/index.html`: every report, with the parameters it was run with and when."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flashsale import config


@dataclass(frozen=True)
class ReportEntry:
    title: str
    html: Path
    executed: Path
    parameters: dict
    finished: datetime | None


def list_reports(reports_dir: Path = config.REPORTS_DIR) -> list[ReportEntry]:
    """The HTML reports that have an executed notebook under `runs/`, newest first."""
    import nbformat

    from flashsale.reports.html_export import _first_heading

    entries = []
    for executed in sorted((reports_dir / "runs").glob("*.ipynb")):
        page = reports_dir / f"{executed.stem}.html"
        if not page.exists():
            continue
        nb = nbformat.read(executed, as_version=4)
        meta = nb.metadata.get("papermill", {})
        finished = meta.get("end_time")
        entries.append(
            ReportEntry(
                title=_first_heading(nb) or executed.stem,
                html=page,
                executed=executed,
                parameters=dict(meta.get("parameters") or {}),
                finished=datetime.fromisoformat(finished) if finished else None,
            )
        )
    return sorted(entries, key=lambda e: e.executed.name)


def write_index(reports_dir: Path = config.REPORTS_DIR) -> Path:
    rows = []
    for entry in list_reports(reports_dir):
        params = "".join(
            f"<li><code>{html.escape(k)}</code> = {html.escape(_short(v))}</li>" for k, v in entry.parameters.items()
        )
        when = entry.finished.strftime("%Y-%m-%d %H:%M UTC") if entry.finished else "unknown"
        rows.append(
            f"<tr><td><a href='{html.escape(entry.html.name)}'>{html.escape(entry.title)}</a><br>"
            f"<small>{html.escape(entry.executed.stem)}</small></td>"
            f"<td>{html.escape(when)}</td><td><ul>{params}</ul></td></tr>"
        )
    body = "\n".join(rows) or "<tr><td colspan='3'>No reports yet: run <code>make report</code>.</td></tr>"
    page = reports_dir / "index.html"
    page.write_text(_PAGE.format(rows=body), encoding="utf-8")
    return page


def _short(value: object, limit: int = 120) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashsale reports</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .5rem; vertical-align: top; text-align: left; }}
ul {{ margin: 0; padding-left: 1rem; }} small {{ color: #777; }}
</style></head>
<body><h1>flashsale reports</h1>
<p>Each report is a notebook of <code>notebooks/</code> executed by papermill with the parameters shown, its figures
regenerated from the tidy data in <code>data/</code>. Executed notebooks are kept in <code>reports/runs/</code>.</p>
<table><thead><tr><th>report</th><th>finished</th><th>parameters</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""
