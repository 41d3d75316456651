"""Report section: performance per subgroup (any manifest column or image-path pattern), the largest gaps with
their tests, and the small-group warnings."""
from __future__ import annotations

from medfit.report.evidence_html import esc, note, table, value

GAPS = {"auc": "AUC", "sensitivity": "sensitivity", "specificity": "specificity"}


def _gap_line(name: str, gap: dict) -> str:
    return (f"Largest {GAPS[name]} gap: {gap['highest']} vs {gap['lowest']}, difference {gap['difference']:.3f}, "
            f"{gap['test']} p = {gap['p_value']:.3g} (Bonferroni over {gap['groups_compared']} groups "
            f"{gap['p_value_bonferroni']:.3g})")


def subgroup_table_html(attribute: str, t: dict) -> str:
    """One attribute's table, gap lines and warnings."""
    rows = [[esc(g["group"]), str(g["n"]), str(g["positives"]), value(g["prevalence"]), value(g["auc"], g.get("auc_ci")),
             value(g["sensitivity"], g.get("sensitivity_ci")), value(g["specificity"], g.get("specificity_ci")),
             value(g.get("slope")), value(g.get("intercept"))] for g in t["groups"]]
    gaps = [note(_gap_line(k, gap)) for k, gap in (t.get("gaps") or {}).items() if gap]
    return (f"<h3>By {esc(attribute)} ({esc(t.get('split', 'test'))}, threshold {t['threshold']:.3f} carried from "
            "validation)</h3>"
            + table(["group", "n", "positives", "prevalence", "AUC", "sensitivity", "specificity", "calibration slope",
                     "calibration intercept"], rows)
            + "".join(gaps) + "".join(note(w, warn=True) for w in t.get("warnings", [])))


def subgroups_section(metrics: dict) -> str:
    """Every attribute's table; empty when no subgroups were asked for."""
    found = metrics.get("subgroups") or {}
    if not found:
        return ""
    return "<h2>Subgroups</h2>" + "".join(subgroup_table_html(a, t) for a, t in found.items())
