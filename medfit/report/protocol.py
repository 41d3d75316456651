"""The k-fold cross-validation page: folds, pooled out-of-fold AUC, and suspected label issues with thumbnails."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from medfit.report.page import STYLE, fmt
from medfit.report.thumbnails import thumbnail_tag
from medfit.run_folder import ProtocolFolder

THUMB_STYLE = (".thumb{display:inline-block;margin:.3rem;text-align:center;font-size:.8rem;max-width:170px}"
               ".thumb img{image-rendering:pixelated;border:1px solid #ccc}")


def folds_table(result: dict) -> str:
    """Per-fold test metrics, then mean +- sd."""
    table = pd.DataFrame(result.get("folds", []))
    summary = "".join(f"<li>{html.escape(k)}: {v['mean']:.3f} ± {v['sd']:.3f}</li>"
                      for k, v in result.get("summary", {}).items())
    return table.to_html(border=0, index=False, float_format=lambda v: f"{v:.3f}") + f"<ul>{summary}</ul>"


def label_issues_section(folder: ProtocolFolder, result: dict, limit: int = 40) -> str:
    """The ranked suspected mislabels: thumbnail, given label, suggested label and their out-of-fold probabilities."""
    summary = result.get("label_issues") or {}
    if not folder.has("label_issues"):
        return ""
    table = folder.read_csv("label_issues")
    head = (f"<h2>Suspected label issues: {len(table)} of {summary.get('of', '?')} images</h2>"
            f"<p class=muted>{html.escape(summary.get('method', ''))}. Lowest label quality first; each image was "
            f"predicted by the fold model that never trained on it. Full list: {folder.file('label_issues').name}; "
            f"review them with <code>medfit review {html.escape(str(folder.path))}</code>.</p>")
    figures = [thumbnail_tag(r["image"], f"#{int(r['rank'])} {html.escape(Path(str(r['image'])).name[-32:])}<br>"
                             f"given <b>{html.escape(str(r['label']))}</b> (p {r['p_label']:.2f}), "
                             f"suggested <b>{html.escape(str(r['suggested']))}</b> (p {r['p_suggested']:.2f})")
               for _, r in table.head(limit).iterrows()]
    more = f"<p class=muted>{len(table) - limit} more in the CSV</p>" if len(table) > limit else ""
    return head + "<div>" + "".join(figures) + "</div>" + more


def write_cv_report(folder: ProtocolFolder) -> Path:
    """Write the k-fold page into the protocol folder and return its path."""
    result = folder.read_json("result")
    pooled = result.get("pooled", {})
    parts = [f"<h1>{html.escape(result.get('protocol', 'cross-validation'))}</h1>",
             f"<p>pooled out-of-fold AUC {fmt(pooled.get('auc'), pooled.get('auc_ci'))}, n = {pooled.get('n', '–')}</p>",
             "<h2>Folds (test part of each fold)</h2>", folds_table(result), label_issues_section(folder, result)]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>medfit · {html.escape(folder.path.name)}</title>"
            f"<style>{STYLE}{THUMB_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    return folder.write_text("report", page)
