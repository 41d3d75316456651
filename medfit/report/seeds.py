"""Report section: a deep ensemble's pooled metrics (with their CIs) beside the members' mean +- sd over seeds."""
from __future__ import annotations

from medfit.report.evidence_html import esc, note, table, value
from medfit.report.markdown import ordered_splits

KEYS = ["auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]


def mean_sd(leaf: dict | None) -> str:
    """'0.912 ± 0.011', a dash when missing."""
    if not leaf:
        return "–"
    sd = leaf.get("sd")
    return f"{leaf['mean']:.3f} ± {sd:.3f}" if sd is not None else f"{leaf['mean']:.3f}"


def seeds_section(metrics: dict) -> str:
    """Per split and metric: the ensemble's value with its CI, and mean ± sd over the members; empty otherwise."""
    s = metrics.get("seeds")
    if not s:
        return ""
    rows = []
    for split in ordered_splits(s["splits"]):
        pooled = metrics.get("splits", {}).get(split, {})
        for key in [k for k in KEYS if k in s["splits"][split]]:
            rows.append([esc(split), key, value(pooled.get(key), pooled.get(f"{key}_ci")), mean_sd(s["splits"][split][key])])
    return ("<h2>Ensemble and seeds</h2>"
            + note(f"{s['members']} members (seeds {', '.join(map(str, s['seeds']))}). The ensemble averages the "
                   "members' probabilities; each member is also scored on its own, at its own validation threshold.")
            + table(["split", "metric", "ensemble (CI)", "members: mean ± sd"], rows))
