"""Side-by-side parts for multiclass and multilabel runs: each class's ROC curve per run, and per-class paired
DeLong tests (Holm) with the macro AUC paired bootstrap of every run against the first."""
from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from medfit.errors import DataError  # noqa: E402
from medfit.evaluate.compare_class_runs import compare_class_runs  # noqa: E402
from medfit.report.page import figure_to_data_uri, img_tag  # noqa: E402
from medfit.run_folder import RunFolder  # noqa: E402
from medfit.task import Task  # noqa: E402


def class_roc_figure(runs: list[RunFolder], names: list[str], split: str) -> str:
    """One panel per class: every run's one-vs-rest ROC curve on ``split``."""
    task = Task.of(runs[0].read_config().data)
    classes = list(task.output_names)
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 4.2), squeeze=False)
    for run, name in zip(runs, names):
        pred = run.read_predictions()
        part = pred[pred["split"] == split]
        if part.empty:
            continue
        Y = task.labels(part).astype(int)
        Y = Y if Y.ndim == 2 else (Y[:, None] == range(len(classes))).astype(int)
        P = task.probability_matrix(part)
        for k, ax in enumerate(axes[0]):
            if 0 < Y[:, k].sum() < len(Y):
                fpr, tpr, _ = roc_curve(Y[:, k], P[:, k])
                ax.plot(fpr, tpr, label=name)
    for k, ax in enumerate(axes[0]):
        ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1)
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{classes[k]} vs the rest ({split})")
        ax.legend(loc="lower right", fontsize=7)
    return img_tag(figure_to_data_uri(fig), "per-class ROC curves of the runs")


def _p(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def class_comparison_html(runs: list[RunFolder], names: list[str], split: str, level: float = 0.95) -> str:
    """Per-class paired DeLong (Holm-adjusted p) and the macro AUC paired bootstrap, every run against the first."""
    rows = []
    for run, name in zip(runs[1:], names[1:]):
        label = f"{html.escape(names[0])} vs {html.escape(name)}"
        try:
            r = compare_class_runs(runs[0], run, [split], level)["splits"][split]
        except DataError as exc:
            rows.append(f"<tr><td>{label}</td><td colspan=7>{html.escape(str(exc))}</td></tr>")
            continue
        for cls, c in r["per_class"].items():
            if c is None:
                rows.append(f"<tr><td>{label}</td><td>{html.escape(cls)}</td><td colspan=6>one side missing</td></tr>")
                continue
            rows.append(f"<tr><td>{label}</td><td>{html.escape(cls)}</td><td>{r['n']}</td>"
                        f"<td>{c['difference']:+.3f}</td>"
                        f"<td>{c['ci'][0]:+.3f} to {c['ci'][1]:+.3f}</td><td>{_p(c['p_value'])}</td>"
                        f"<td>{_p(c['p_holm'])}</td><td>DeLong</td></tr>")
        m = r["macro"]
        rows.append(f"<tr><td>{label}</td><td><b>macro</b></td><td>{r['n']}</td><td>{m['difference']:+.3f}</td>"
                    f"<td>{m['ci'][0]:+.3f} to {m['ci'][1]:+.3f}</td><td>{_p(m['p_value'])}</td><td></td>"
                    f"<td>paired bootstrap ({m['bootstrap']})</td></tr>")
    if not rows:
        return ""
    return ("<h2>Paired comparisons per class (same cases)</h2><table><tr><th>comparison</th><th>class</th><th>n</th>"
            f"<th>AUC difference</th><th>{int(level * 100)} % CI</th><th>p</th><th>p (Holm)</th><th>test</th></tr>"
            + "".join(rows) + "</table>")
