"""One self-contained HTML page per run, built from the run folder alone."""
from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from medfit.config import config_to_yaml  # noqa: E402
from medfit.report.cards import write_cards  # noqa: E402
from medfit.report.classes import threshold_text  # noqa: E402
from medfit.report.page import METRIC_ORDER, STYLE, figure_to_data_uri, fmt, img_tag  # noqa: E402
from medfit.report.sections import extra_sections, model_title  # noqa: E402
from medfit.report.shift import shift_section  # noqa: E402
from medfit.run_folder import RunFolder  # noqa: E402


def metric_table(metrics: dict) -> str:
    """Rows = splits, columns = metrics with their CIs."""
    splits = metrics.get("splits", {})
    keys = [k for k in METRIC_ORDER if any(k in s for s in splits.values())]
    head = "<tr><th>split</th><th>n</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{s.get('n', '')}</td>"
        + "".join(f"<td>{fmt(s.get(k), s.get(k + '_ci'))}</td>" for k in keys) + "</tr>"
        for name, s in splits.items())
    return f"<table>{head}{rows}</table>"


def roc_figure(pred: pd.DataFrame, label: str, metrics: dict) -> str:
    """ROC curves of every evaluated split, with AUC and CI in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for split, part in pred.groupby("split", sort=False):
        y = part[label].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, part["prob"].to_numpy())
        s = metrics["splits"].get(split, {})
        ci = s.get("auc_ci")
        ax.plot(fpr, tpr, label=f"{split}: AUC {s.get('auc', float('nan')):.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else ""))
    ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return img_tag(figure_to_data_uri(fig), "ROC curve")


def confusion_figure(split: str, counts: dict, class_names: list[str], threshold: float) -> str:
    """Confusion matrix of one split at the carried threshold."""
    m = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    names = class_names or ["0", "1"]
    ax.set_xticks([0, 1], [f"pred {n}" for n in names])
    ax.set_yticks([0, 1], [f"true {n}" for n in names])
    ax.set_title(f"{split} (threshold {threshold:.3f})", fontsize=9)
    return img_tag(figure_to_data_uri(fig), f"confusion matrix {split}")


def training_figure(log_csv: Path) -> str:
    """Training loss and validation AUC per epoch from the CSV log."""
    if not log_csv.is_file():
        return ""
    log = pd.read_csv(log_csv)
    if "epoch" not in log:
        return ""
    per_epoch = log.groupby("epoch").last()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if "train_loss" in per_epoch:
        ax.plot(per_epoch.index, per_epoch["train_loss"], label="train loss")
    if "val_loss" in per_epoch:
        ax.plot(per_epoch.index, per_epoch["val_loss"], label="val loss")
    ax.set_xlabel("epoch")
    if "val_auc" in per_epoch:
        ax2 = ax.twinx()
        ax2.plot(per_epoch.index, per_epoch["val_auc"], color="C2", label="val AUC")
        ax2.set_ylabel("val AUC")
    # one legend below the axes: inside them it covered the AUC line
    fig.legend(loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.subplots_adjust(bottom=0.25)
    ax.set_title("training")
    return img_tag(figure_to_data_uri(fig), "training curves")


def data_summary(manifest_csv: Path, label_columns: list[str], class_names: list[str]) -> str:
    """Images and patients per split and class."""
    if not manifest_csv.is_file():
        return ""
    m = pd.read_csv(manifest_csv)
    label = label_columns[0]
    table = m.groupby(["split", label]).size().unstack(fill_value=0)
    if class_names and len(class_names) == len(table.columns):
        table.columns = [class_names[int(c)] for c in table.columns]
    table["patients"] = m.groupby("split")["patient_id"].nunique()
    table["sites"] = m.groupby("split")["site"].nunique()
    return table.to_html(border=0)


def write_report(run: RunFolder) -> Path:
    """Write the run's HTML report (config, data, metrics, plots), its model card and TRIPOD+AI checklist; returns the
    report's path."""
    cfg = run.read_config()
    metrics = run.read_metrics()
    pred = run.read_predictions()
    label = cfg.data.label_columns[0]
    class_names = list(cfg.data.class_names)
    figures = []
    if metrics.get("task") == "binary":
        figures.append(roc_figure(pred, label, metrics))
        thr = metrics["threshold"]["value"]
        for split in ("val", "test", "external"):
            counts = metrics["splits"].get(split, {}).get("confusion")
            if counts:
                figures.append(confusion_figure(split, counts, class_names, thr))
    figures.append(training_figure(run.file("training_log")))
    params = metrics.get("parameters", {})
    threshold = metrics.get("threshold", {})
    parts = [
        f"<h1>medfit run: {html.escape(cfg.name)}</h1>",
        f"<p class=muted>{html.escape(model_title(cfg))} · {html.escape(cfg.data.task)} · "
        f"trainable parameters {params.get('trainable', '–'):,} of {params.get('total', '–'):,} · "
        f"{html.escape(threshold_text(threshold))}</p>"
        if params else f"<h1>{html.escape(cfg.name)}</h1>",
        f"<h2>Metrics ({int(metrics.get('ci_level', 0.95) * 100)} % stratified bootstrap CIs, "
        f"{metrics.get('bootstrap', 0)} resamples)</h2>", metric_table(metrics), shift_section(metrics),
        "<h2>Curves</h2>", '<div class="figs">' + "".join(f for f in figures if f) + "</div>",
        "<h2>Data</h2>", data_summary(run.file("manifest"), cfg.data.label_columns, class_names),
        "<h2>Timing</h2>", f"<pre>{html.escape(json.dumps(metrics.get('timing', {}), indent=1))}</pre>",
        "<h2>Config</h2>", f"<pre>{html.escape(config_to_yaml(cfg))}</pre>",
    ]
    at = parts.index("<h2>Data</h2>")
    parts[at:at] = extra_sections(run, cfg, metrics, pred)
    page = f"<!doctype html><html><head><meta charset=utf-8><title>medfit · {html.escape(cfg.name)}</title>" \
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    write_cards(run)
    return run.write_text("report", page)
