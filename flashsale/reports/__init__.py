"""Executing the notebooks with papermill, exporting them to HTML without code, and the index of reports."""

from flashsale.reports.html_export import export_html
from flashsale.reports.index import ReportEntry, list_reports, write_index
from flashsale.reports.notebook_runner import KERNEL_NAME, NotebookFailed, execute_notebook

__all__ = [
    "KERNEL_NAME",
    "NotebookFailed",
    "ReportEntry",
    "execute_notebook",
    "export_html",
    "list_reports",
    "write_index",
]
