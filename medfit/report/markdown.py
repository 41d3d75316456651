"""Markdown pieces for the model card and the TRIPOD+AI checklist: fixed-decimal numbers, CIs, tables."""
from __future__ import annotations

import math

SPLIT_ORDER = ["train", "val", "test", "external"]


def fmt(value, digits: int = 3) -> str:
    """A number with fixed decimals; 'n/a' for None or NaN; integers as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, int)):
        return str(value)
    return f"{float(value):.{digits}f}"


def fmt_ci(value, ci, digits: int = 3) -> str:
    """'0.912 [0.881, 0.940]', or the value alone when there is no CI."""
    if not ci or any(c is None for c in ci):
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """Lines of a Markdown table (pipes inside cells escaped, newlines flattened)."""
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def ordered_splits(names) -> list[str]:
    """train, val, test, external first, then any other split names alphabetically."""
    return sorted(names, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def headline_split(splits) -> str | None:
    """The split a single-split section describes: test, else external (as medfit.evaluate.evidence)."""
    return next((s for s in ("test", "external") if s in splits), None)


def ci_percent(metrics: dict) -> str:
    """The run's CI level as a whole percentage ('95')."""
    return fmt(100 * metrics.get("ci_level", 0.95), 0)
