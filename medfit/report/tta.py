"""Report section: test-time augmentation against the plain prediction on the same cases (paired DeLong)."""
from __future__ import annotations

from medfit.report.evidence_html import esc, note, table, value


def _rows(found: dict, level: str) -> list[list]:
    return [[esc(split), level, str(r["n"]), value(r.get("auc_no_tta")), value(r.get("auc_tta")),
             value(r.get("difference"), r.get("difference_ci")), value(r.get("p_value"))] for split, r in found.items()]


def tta_section(metrics: dict) -> str:
    """A row per split (and per split at study level); empty without test-time augmentation."""
    t = metrics.get("tta")
    if not t:
        return ""
    rows = _rows(t["splits"], "image") + _rows(t.get("studies") or {}, "study")
    return ("<h2>Test-time augmentation</h2>"
            + note(f"Views averaged per image: the image itself and {', '.join(t['views'])}. Paired DeLong test of the "
                   "AUC with against without, on the same cases.")
            + table(["split", "level", "n", "AUC without", "AUC with", "difference (CI)", "p"], rows))
