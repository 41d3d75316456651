"""The per-class part of the end-of-run summary of multiclass and multilabel runs: one row per class of the test
split (val when there is none) with AUC and the metrics at its validation threshold, each with its CI."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from medfit.report.classes import threshold_text


def _cell(value, ci=None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}\n[dim]{ci[0]:.3f}–{ci[1]:.3f}[/dim]" if ci and None not in ci else f"{value:.3f}"


def class_table(metrics: dict) -> Table | None:
    """Rows = classes of the last evaluated split: positives, AUC (bootstrap CI), threshold, sensitivity,
    specificity and PPV at the threshold (Wilson CIs)."""
    splits = [(s, e) for s, e in metrics.get("splits", {}).items() if s != "train" and e.get("classes")]
    if not splits:
        return None
    split, entry = splits[-1]
    block = entry["classes"]
    at = block.get("thresholds") or {}
    table = Table(title=f"per class on {split} (one vs the rest)", title_justify="left")
    for col in ("class", "positives", "AUC", "threshold", "sensitivity", "specificity", "PPV"):
        table.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    for name, a in block["auc"]["per_class"].items():
        t = at.get(name, {})
        ci = t.get("wilson_ci") or {}
        table.add_row(name, str(a["positives"]), _cell(a["auc"], a["auc_ci"]), _cell(t.get("threshold")),
                      *(_cell(t.get(k), ci.get(k)) for k in ("sensitivity", "specificity", "ppv")))
    return table


def print_class_summary(metrics: dict, console: Console) -> None:
    """Print the per-class table and how its thresholds were chosen (nothing for binary runs)."""
    table = class_table(metrics)
    if table is None:
        return
    console.print(table)
    t = metrics.get("class_thresholds") or metrics.get("threshold") or {}
    console.print(threshold_text(t) if not t.get("error") else f"no per-class thresholds: {t['error']}", markup=False)
