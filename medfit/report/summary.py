"""The one-screen summary table printed at the end of a run."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from medfit.audit.ood import ood_line
from medfit.report.shift import shift_sentences
from medfit.report.summary_classes import print_class_summary
from medfit.report.evidence_summary import evidence_lines
from medfit.run_folder import RunFolder

SHOWN = ["auc", "auc_weighted", "accuracy", "top_2", "kappa", "sensitivity", "specificity", "ppv", "npv", "f1"]
SHORT = {"auc": "AUC", "auc_weighted": "AUC weighted", "accuracy": "accuracy", "top_2": "top-2", "kappa": "kappa",
         "sensitivity": "sensitivity", "specificity": "specificity", "ppv": "PPV", "npv": "NPV", "f1": "F1"}


def print_summary(run: RunFolder, console: Console | None = None) -> None:
    """Print metrics per split (with CIs), the threshold, parameters, timing and the report path."""
    # logs and pipes get a fixed wide table instead of rich's 80-column default (which truncates the CIs)
    console = console or Console(width=None if sys.stdout.isatty() else 132)
    metrics = run.read_metrics()
    splits = metrics.get("splits", {})
    keys = [k for k in SHOWN if any(k in s for s in splits.values())]
    table = Table(title=f"medfit · {run.path.name}", title_justify="left")
    table.add_column("split")
    table.add_column("n", justify="right")
    for k in keys:
        table.add_column(SHORT.get(k, k), justify="right", no_wrap=True)
    for name, s in splits.items():
        cells = []
        for k in keys:
            v, ci = s.get(k), s.get(k + "_ci")
            cells.append("–" if v is None else (f"{v:.3f}\n[dim]{ci[0]:.3f}–{ci[1]:.3f}[/dim]" if ci else f"{v:.3f}"))
        table.add_row(name, str(s.get("n", "")), *cells)
    console.print(table)
    print_class_summary(metrics, console)
    thr = metrics.get("threshold", {})
    params = metrics.get("parameters", {})
    timing = metrics.get("timing", {})
    level = int(round(metrics.get("ci_level", 0.95) * 100))
    if thr.get("value") is not None and "per_class" not in thr:
        console.print(f"threshold: {thr['method']} on val = {thr['value']:.4f} (carried unchanged to the other splits); "
                      f"second line: {level} % stratified bootstrap CI")
    if params:
        console.print(f"parameters: {params['trainable']:,} trainable of {params['total']:,}")
    if timing:
        console.print(f"time: loading {timing.get('load_seconds')} s, training {timing.get('fit_seconds')} s "
                      f"over {timing.get('epochs_run')} epochs ({timing.get('train_images_per_second')} img/s)")
    for line in metrics.get("warnings") or []:
        console.print(f"warning: {line}", markup=False)
    for sentence in shift_sentences(metrics):
        console.print(f"shift: {sentence}", markup=False)
    for line in evidence_lines(metrics):
        console.print(line, markup=False)
    if run.has("audit"):
        console.print(run.read_json("audit").get("summary", ""), markup=False)
    if run.has("ood"):
        console.print(f"out-of-distribution gate: {ood_line(run.read_json('ood'))}", markup=False)
    console.print(f"run folder: {run.path}  ·  report: {run.file('report')}")
