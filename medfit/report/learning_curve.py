"""The learning-curve page: validation and test AUC with CIs against training patients, the per-seed points and the
verdict on whether the curve has flattened."""
from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from medfit.report.evidence_html import note, table, value  # noqa: E402
from medfit.report.page import STYLE, figure_to_data_uri, img_tag  # noqa: E402

COLOURS = {"val": "C0", "test": "C1"}


def learning_curve_figure(result: dict, rows: pd.DataFrame) -> str:
    """AUC against training patients (log axis): mean with CI per split, each seed's model as a dot."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    level = int(round(100 * result.get("ci_level", 0.95)))
    for split, points in result["curves"].items():
        if not points:
            continue
        x = [p["patients"] for p in points]
        ax.plot(x, [p["auc"] for p in points], "o-", color=COLOURS.get(split), label=f"{split} AUC (mean over seeds)")
        ax.fill_between(x, [p["ci"][0] for p in points], [p["ci"][1] for p in points], color=COLOURS.get(split),
                        alpha=0.18, lw=0, label=f"{split} {level} % CI")
        ax.scatter(rows["patients"], rows[f"{split}_auc"], s=10, color=COLOURS.get(split), alpha=0.5)
    ax.set_xscale("log")
    ax.set(xlabel="training patients", ylabel="AUC", title="Learning curve")
    ax.legend(loc="lower right", fontsize=8)
    return img_tag(figure_to_data_uri(fig), "learning curve")


def learning_curve_page(result: dict, rows: pd.DataFrame) -> str:
    """A self-contained HTML page: the figure, the points table and the verdict."""
    body = []
    for split, points in result["curves"].items():
        body += [[html.escape(split), f"{100 * p['fraction']:.0f} %", str(p["patients"]), value(p["auc"], p["ci"]),
                  value(p["seed_sd"]), str(p["seeds"])] for p in points]
    summary = result.get("summary") or {}
    parts = ["<h1>Learning curve</h1>", note(result["protocol"]), learning_curve_figure(result, rows),
             table(["split", "share of training patients", "patients", "AUC (CI)", "sd over seeds", "seeds"], body),
             note(f"Verdict: {summary.get('message', 'not enough points')}. Rule: {summary.get('rule', '')}.",
                  warn=summary.get("flattened") is False)]
    return (f"<!doctype html><html><head><meta charset=utf-8><title>medfit · learning curve</title><style>{STYLE}"
            f"</style></head><body>{''.join(parts)}</body></html>")
