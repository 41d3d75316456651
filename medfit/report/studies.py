"""Report section: study-level results of augmented prediction (key slice +- k combined per study): metrics at the
validation studies' threshold, single-slice vs combined AUC, and per-site rows (internal vs external)."""
from __future__ import annotations

import html

from medfit.report.page import fmt
from medfit.run_folder import RunFolder

STUDY_METRICS = ["auc", "accuracy", "sensitivity", "specificity", "f1", "ppv", "npv"]


def study_metric_table(level: dict) -> str:
    """Rows = splits; n studies, positives and each metric with its CI."""
    head = "<tr><th>split</th><th>studies</th><th>positives</th>" + "".join(f"<th>{k}</th>" for k in STUDY_METRICS) \
        + "</tr>"
    body = "".join(f"<tr><td>{html.escape(s)}</td><td>{e['n']}</td><td>{e['positives']}</td>"
                   + "".join(f"<td>{fmt(e.get(k), e.get(k + '_ci'))}</td>" for k in STUDY_METRICS) + "</tr>"
                   for s, e in level["splits"].items())
    return f"<table>{head}{body}</table>"


def comparison_table(results: dict) -> str:
    """Single-slice vs combined AUC per split with the paired DeLong p."""
    head = "<tr><th>split</th><th>studies</th><th>key slice only AUC</th><th>combined AUC</th><th>difference</th>" \
           "<th>DeLong p</th></tr>"
    body = "".join(f"<tr><td>{html.escape(s)}</td><td>{r['studies']}</td><td>{fmt(r.get('auc_single'))}</td>"
                   f"<td>{fmt(r.get('auc_combined'))}</td><td>{fmt(r.get('difference'))}</td>"
                   f"<td>{fmt(r.get('p_value'))}</td></tr>" for s, r in results["splits"].items())
    return f"<table>{head}{body}</table>"


def site_rows(rows: list[dict]) -> str:
    """Study-level rows per (split, site) with the site's role (internal: it had training rows)."""
    head = "<tr><th>split</th><th>site</th><th>role</th><th>studies</th><th>positives</th>" + \
        "".join(f"<th>{k}</th>" for k in STUDY_METRICS[:5]) + "</tr>"
    body = "".join(f"<tr><td>{html.escape(r['split'])}</td><td>{html.escape(r['site'])}</td>"
                   f"<td>{html.escape(r.get('role', ''))}</td><td>{r['n']}</td><td>{r['positives']}</td>"
                   + "".join(f"<td>{fmt(r.get(k), r.get(k + '_ci'))}</td>" for k in STUDY_METRICS[:5]) + "</tr>"
                   for r in rows)
    return f"<table>{head}{body}</table>"


def study_section(run: RunFolder) -> str:
    """The study-level section of a run with augmented prediction (empty otherwise)."""
    if not run.has("augmented"):
        return ""
    results = run.read_json("augmented")
    level = results.get("study_level") or {}
    out = [f"<h2>Study level (key slice ± {results['neighbours']}, {html.escape(results['rule'])})</h2>"]
    if "splits" in level:
        t = level["threshold"]
        out += [f"<p>Threshold {html.escape(str(t['method']))} = {fmt(t['value'])} chosen on the validation "
                "studies' combined probabilities and carried to every split.</p>", study_metric_table(level)]
        if level.get("sites"):
            out += ["<h3>Per site (internal: the site had training studies)</h3>", site_rows(level["sites"])]
    elif level.get("note"):
        out.append(f"<p class=muted>{html.escape(level['note'])}</p>")
    out += ["<h3>Key slice only vs combined</h3>", comparison_table(results)]
    return "".join(out)
