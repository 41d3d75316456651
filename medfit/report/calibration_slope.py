"""Report section: calibration as a first-class result (Brier, ECE, slope and intercept per split; before and after
temperature scaling on the headline split)."""
from __future__ import annotations

from medfit.report.evidence_html import esc, note, table, value
from medfit.report.markdown import ordered_splits


def calibration_slope_section(metrics: dict) -> str:
    """A table per split and the recalibration line; empty when no split has a calibration slope."""
    splits = metrics.get("splits", {})
    rows = [[esc(s), value(c.get("brier")), value(c.get("ece")), value(c.get("slope"), c.get("slope_ci")),
             value(c.get("intercept"), c.get("intercept_ci"))]
            for s in ordered_splits(splits) if "slope" in (c := splits[s].get("calibration") or {})]
    if not rows:
        return ""
    out = ["<h2>Calibration: slope and intercept</h2>",
           table(["split", "Brier", "ECE", "slope (ideal 1)", "intercept (ideal 0)"], rows),
           note("Logistic recalibration: slope below 1 means predicted risks are too extreme, an intercept above 0 "
                "that risks are underestimated on average (Wald CIs).")]
    r = metrics.get("recalibration")
    if r:
        b, a = r["before"], r["after_temperature"]
        out.append(table(["split", "", "slope", "intercept"], [
            [esc(r["split"]), "as predicted", value(b["slope"], b["slope_ci"]), value(b["intercept"], b["intercept_ci"])],
            [esc(r["split"]), f"after temperature T = {value(r['temperature'])} (fitted on {esc(r['fitted_on'])})",
             value(a["slope"], a["slope_ci"]), value(a["intercept"], a["intercept_ci"])]]))
    return "".join(out)
