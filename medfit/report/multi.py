"""Several runs side by side on one page: metrics with CIs, ROC curves, DeLong tests against the first run."""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from medfit.errors import DataError  # noqa: E402
from medfit.evaluate.compare import compare_runs  # noqa: E402
from medfit.report.multi_classes import class_comparison_html, class_roc_figure  # noqa: E402
from medfit.report.page import METRIC_ORDER, STYLE, figure_to_data_uri, fmt, img_tag  # noqa: E402
from medfit.report.sections import model_title  # noqa: E402
from medfit.run_folder import RunFolder, write_text  # noqa: E402


def _load(run: RunFolder):
    if not run.has("metrics"):
        raise DataError(f"{run.file('metrics')}: not found; run `medfit evaluate {run.path}` first")
    return run.read_config(), run.read_metrics()


def write_multi_report(runs: list[RunFolder], out: str | Path, split: str = "test") -> Path:
    """One self-contained HTML page comparing runs on ``split`` (each run's own report stays in its folder)."""
    loaded = [_load(r) for r in runs]
    names = [cfg.name if [c.name for c, _ in loaded].count(cfg.name) == 1 else str(r.path)
             for r, (cfg, _) in zip(runs, loaded)]
    keys = [k for k in METRIC_ORDER if any(k in m["splits"].get(split, {}) for _, m in loaded)]
    head = "<tr><th>run</th><th>model</th><th>trainable params</th><th>n</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    rows = []
    for name, (cfg, m) in zip(names, loaded):
        s = m["splits"].get(split, {})
        params = (m.get("parameters") or {}).get("trainable")
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(model_title(cfg))}</td>"
                    f"<td>{f'{params:,}' if params else '–'}</td><td>{s.get('n', '–')}</td>"
                    + "".join(f"<td>{fmt(s.get(k), s.get(k + '_ci'))}</td>" for k in keys) + "</tr>")
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    binary = all(cfg.data.task == "binary" for cfg, _ in loaded)
    for i, (run, name) in enumerate(zip(runs, names)):
        if not binary:
            break
        pred = run.read_predictions()
        part = pred[pred["split"] == split]
        label = loaded[i][0].data.label_columns[0]
        if part[label].nunique() == 2:
            fpr, tpr, _ = roc_curve(part[label], part["prob"])
            ax.plot(fpr, tpr, label=f"{name}: AUC {loaded[i][1]['splits'][split]['auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC on {split}")
    if binary:
        ax.legend(loc="lower right", fontsize=8)
    else:
        plt.close(fig)
    roc = img_tag(figure_to_data_uri(fig), "ROC curves of the runs") if binary else class_roc_figure(runs, names, split)
    tests = []
    if binary:
        for run, name in zip(runs[1:], names[1:]):
            try:
                r = compare_runs(runs[0], run, [split])["splits"][split]
            except DataError as exc:
                tests.append(f"<tr><td>{html.escape(names[0])} vs {html.escape(name)}</td><td colspan=6>{html.escape(str(exc))}</td></tr>")
                continue
            tests.append(f"<tr><td>{html.escape(names[0])} vs {html.escape(name)}</td><td>{r['n']}</td>"
                         f"<td>{r['difference']:+.3f}</td><td>{r['ci'][0]:+.3f} to {r['ci'][1]:+.3f}</td>"
                         f"<td>{r['z']:.2f}</td><td>{r['p_value']:.4f}</td></tr>")
    test_table = ("<h2>Paired DeLong tests (same cases)</h2><table><tr><th>comparison</th><th>n</th><th>AUC difference</th>"
                  "<th>95 % CI</th><th>z</th><th>p</th></tr>" + "".join(tests) + "</table>") if tests else ""
    if not binary:
        test_table = class_comparison_html(runs, names, split)
    links = "".join(f"<li>{html.escape(n)}: <code>{html.escape(str(r.file('report')))}</code></li>"
                    for n, r in zip(names, runs))
    body = (f"<h1>medfit: {len(runs)} runs side by side</h1><p class=muted>split: {html.escape(split)}; "
            f"CIs are each run's stratified bootstrap</p><table>{head}{''.join(rows)}</table>"
            f"<h2>ROC</h2><div class=figs>{roc}</div>{test_table}<h2>Per-run reports</h2><ul>{links}</ul>")
    return write_text(Path(out), f"<!doctype html><html><head><meta charset=utf-8><title>medfit · {len(runs)} runs</title>"
                   f"<style>{STYLE}</style></head><body>{body}</body></html>")
