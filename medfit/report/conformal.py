"""Report section: conformal prediction sets (coverage, set size, uncertain share on the evaluation splits and per
site), with the shortfall statement when test coverage falls short of the requested level."""
from __future__ import annotations

from medfit.evaluate.conformal_run import TOLERANCE
from medfit.report.evidence_html import esc, note, percent, table, value


def _row(name: str, s: dict) -> list:
    return [esc(name), str(s["n"]), value(s.get("coverage")), value(s.get("mean_set_size")),
            percent(s.get("uncertain_share")), percent(s.get("empty_share"))]


def conformal_section(metrics: dict) -> str:
    """Coverage table (headline split, its sites and classes, other splits) and the coverage statement."""
    c = metrics.get("conformal")
    if not c:
        return ""
    if c.get("coverage") is None:
        return "<h2>Conformal prediction sets</h2>" + note(f"Not computed: {c.get('skipped', 'no cases')}", warn=True)
    rows = [_row(c["split"], c)]
    rows += [_row(f"{c['split']} · site {g}", s) for g, s in (c.get("per_group") or {}).items()]
    rows += [_row(f"{c['split']} · class {k}", {**s, "mean_set_size": None}) for k, s in (c.get("per_class") or {}).items()]
    rows += [_row(s, o) for s, o in (c.get("other_splits") or {}).items() if "coverage" in o]
    short = c["coverage"] is not None and c["coverage"] < c["target_coverage"] - TOLERANCE
    mondrian = ", Mondrian by " + " and ".join(c["mondrian"]) if c.get("mondrian") else ""
    head = (f"Split-conformal sets ({c['method'].upper()}{mondrian}) at alpha {c['alpha']}: requested coverage "
            f"{c['target_coverage']:.2f}, calibrated on {c['calibration_n']} validation cases. A set with more than one "
            "label is an uncertain case; an empty set is a case unlike any label's calibration cases.")
    return ("<h2>Conformal prediction sets</h2>" + note(head)
            + table(["cases", "n", "coverage", "mean set size", "uncertain (size > 1)", "empty"], rows)
            + note(c.get("note", ""), warn=short) + "".join(note(w, warn=True) for w in c.get("warnings", [])))
