"""Reports: one self-contained HTML page per run folder."""
from medfit.report.html import write_report

__all__ = ["write_report"]
