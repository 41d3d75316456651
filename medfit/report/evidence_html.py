"""HTML building blocks shared by the evidence sections: a table from rows, a value with its CI, a note."""
from __future__ import annotations

import html

from medfit.report.page import fmt


def table(header: list[str], rows: list[list]) -> str:
    """An HTML table; cells are HTML already (escape text with ``esc``)."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def esc(text) -> str:
    """Text made safe for HTML."""
    return html.escape(str(text))


def value(v, ci=None) -> str:
    """A number with its CI (the report's format), a dash when missing."""
    return fmt(v if v is None else float(v), ci if ci and None not in ci else None)


def percent(v, digits: int = 1) -> str:
    """A share as a percentage, a dash when missing."""
    return "–" if v is None else f"{100 * float(v):.{digits}f} %"


def note(text: str, warn: bool = False) -> str:
    """A paragraph; a warning is set in bold."""
    return f"<p class=muted><b>{esc(text)}</b></p>" if warn else f"<p class=muted>{esc(text)}</p>"
