"""The report's dataset-audit section: the summary, the findings before and after dedupe side by side, what dedupe
removed per class, split and reason, the warnings and the findings table."""
from __future__ import annotations

import html

from medfit.run_folder import RunFolder

COUNT_ROWS = [("span_splits", "duplicate groups spanning splits"), ("conflicts", "groups with conflicting labels"),
              ("id_leaks", "patient/study/DICOM ids in two splits"),
              ("within_split_groups", "duplicate groups within one split"),
              ("within_split_extra", "extra copies within one split")]


def counts_table(before: dict | None, after: dict) -> str:
    """Finding counts: one column when nothing was removed, else before and after dedupe side by side."""
    if not after:
        return ""
    columns = [("found", after)] if before is None else [("before dedupe", before), ("after dedupe", after)]
    head = "<tr><th>finding</th>" + "".join(f"<th>{name}</th>" for name, _ in columns) + "</tr>"
    body = "".join(f"<tr><td>{text}</td>" + "".join(f"<td>{counts.get(key, 0)}</td>" for _, counts in columns)
                   + "</tr>" for key, text in COUNT_ROWS)
    return f"<table class=audit-counts>{head}{body}</table>"


def removed_table(counts: dict) -> str:
    """What dedupe removed: per class (of how many, share), then per split and per reason in one line."""
    if not counts:
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['removed']}</td><td>{v['of']}</td><td>{v['share']:.1%}</td></tr>"
                   for k, v in counts.get("by_class", {}).items())
    table = (f"<table><tr><th>class</th><th>removed</th><th>of</th><th>share</th></tr>{rows}</table>" if rows else "")
    where = ", ".join(f"{html.escape(str(k))} {v}" for k, v in counts.get("by_split", {}).items())
    why = ", ".join(f"{html.escape(str(k))} {v}" for k, v in counts.get("by_reason", {}).items())
    return (f"<h3>Removed by dedupe: {counts.get('total', 0)} image(s)</h3>{table}"
            f"<p class=muted>by split: {where}; by reason: {why}</p>")


def audit_section(run: RunFolder, max_rows: int = 30) -> str:
    """The dataset audit run before training: summary, counts before/after dedupe, removals, warnings, findings."""
    if not run.has("audit"):
        return ""
    audit = run.read_json("audit")
    out = [f"<h2>Dataset audit</h2><p>{html.escape(audit.get('summary', ''))}</p>",
           counts_table(audit.get("before_dedupe"), audit.get("counts") or {}),
           removed_table(audit.get("removed_counts") or {})]
    out += [f"<p class=muted>warning: {html.escape(w)}</p>" for w in audit.get("warnings", [])]
    if run.has("audit_findings"):
        table = run.read_csv("audit_findings", dtype=str).fillna("")
        if len(table):
            more = f"<p class=muted>{len(table) - max_rows} more rows in {run.file('audit_findings').name}</p>" \
                if len(table) > max_rows else ""
            out.append(table.head(max_rows).to_html(border=0, index=False) + more)
    return "".join(out)
