"""Reports: one self-contained HTML page per run folder, several runs side by side, the end-of-run summary."""
from medfit.report.html import write_report

__all__ = ["write_report"]
