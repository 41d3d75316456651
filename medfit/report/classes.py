"""Report sections of multiclass and multilabel runs: per-class AUC with CIs and metrics at per-class thresholds
chosen on validation, per-class ROC and PR curves, agreement (accuracy, top-k, kappa), confusion matrix with row
percentages and the most frequent confusions with example images, classwise calibration, label co-occurrence and
the "any" label."""
from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medfit.evaluate.curves import ovr_curves  # noqa: E402
from medfit.explain.thumbnails import input_thumbnails  # noqa: E402
from medfit.report.page import figure_to_data_uri, fmt, img_tag  # noqa: E402
from medfit.run_folder import RunFolder  # noqa: E402
from medfit.task import Task  # noqa: E402

PROPORTIONS = ["sensitivity", "specificity", "ppv", "npv"]


def _splits(metrics: dict) -> list[tuple[str, dict]]:
    return [(s, e) for s, e in metrics.get("splits", {}).items() if s != "train" and e.get("classes")]


def _ci(ci) -> list | None:
    return ci if ci and all(c is not None for c in ci) else None


def _level(metrics: dict) -> int:
    return int(round(metrics.get("ci_level", 0.95) * 100))


def threshold_note(metrics: dict) -> str:
    """How the per-class thresholds were chosen, in words (or why there are none)."""
    t = metrics.get("class_thresholds") or metrics.get("threshold") or {}
    if t.get("error"):
        return f"no per-class thresholds: {t['error']}"
    value = f" {t['value']}" if t.get("value") is not None else ""
    return (f"thresholds per class: {t.get('method')}{value} on class k vs the rest, chosen on validation and carried "
            "unchanged to the other splits; Wilson intervals")


def per_class_table(split: str, block: dict, level: int) -> str:
    """One row per class: positives, AUC with bootstrap and DeLong CIs, metrics at its threshold with Wilson CIs."""
    auc, at = block["auc"], block.get("thresholds") or {}
    head = ("<tr><th>class</th><th>positives</th><th>AUC (bootstrap CI)</th><th>DeLong CI</th><th>threshold</th>"
            + "".join(f"<th>{k}</th>" for k in PROPORTIONS) + "</tr>")
    rows = []
    for name, a in auc["per_class"].items():
        t = at.get(name, {})
        dl = a.get("auc_delong_ci")
        cells = "".join(f"<td>{fmt(t.get(k), _ci((t.get('wilson_ci') or {}).get(k)))}</td>" for k in PROPORTIONS)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{a['positives']}</td><td>{fmt(a['auc'], _ci(a['auc_ci']))}"
                    f"</td><td>{f'{dl[0]:.3f}–{dl[1]:.3f}' if _ci(dl) else '–'}</td>"
                    f"<td>{fmt(t.get('threshold'))}</td>"
                    f"{cells}</tr>")
    for avg in ("macro", "weighted"):
        value = fmt(auc[f"auc_{avg}"], _ci(auc[f"auc_{avg}_ci"]))
        rows.append(f"<tr><td><b>{avg}</b></td><td>{auc['n']}</td><td>{value}"
                    f"</td>" + "<td></td>" * (2 + len(PROPORTIONS)) + "</tr>")
    return f"<h3>{html.escape(split)} ({level} % CIs)</h3><table>{head}{''.join(rows)}</table>"


def curves_figure(split: str, part: pd.DataFrame, task: Task) -> str:
    """Per-class one-vs-rest ROC (left) and precision-recall (right) curves of one split."""
    curves = ovr_curves(task.labels(part).astype(int), task.probability_matrix(part), list(task.output_names))
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.6))
    for i, (name, c) in enumerate(curves.items()):
        if c is None:
            continue
        auc = float(np.trapezoid(c["roc"]["tpr"], c["roc"]["fpr"]))
        roc.plot(c["roc"]["fpr"], c["roc"]["tpr"], color=f"C{i}", label=f"{name}: AUC {auc:.3f}")
        pr.plot(c["pr"]["recall"], c["pr"]["precision"], color=f"C{i}",
                label=f"{name}: AP {c['pr']['average_precision']:.3f} (prev. {c['pr']['prevalence']:.2f})")
        pr.axhline(c["pr"]["prevalence"], color=f"C{i}", ls=":", lw=1)
    roc.plot([0, 1], [0, 1], "--", color="#aaa", lw=1)
    roc.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{split}: ROC, each class vs the rest")
    pr.set(xlabel="recall", ylabel="precision", title=f"{split}: precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    roc.legend(loc="lower right", fontsize=7)
    pr.legend(loc="lower left", fontsize=7)
    return img_tag(figure_to_data_uri(fig), f"per-class ROC and PR curves {split}")


def agreement_table(metrics: dict) -> str:
    """Per split: argmax accuracy (bootstrap CI), the threshold rule's accuracy, top-k and Cohen's kappa."""
    rows = []
    ks = sorted({k for _, e in _splits(metrics) for k in e["classes"].get("top_k", {})})
    for split, e in _splits(metrics):
        b = e["classes"]
        if "kappa" not in b:
            continue
        rule, kap = b.get("decision_rule") or {}, b["kappa"]
        top = "".join(f"<td>{fmt(b['top_k'][k]['accuracy'], _ci(b['top_k'][k]['ci']))}</td>" if k in b["top_k"]
                      else "<td>–</td>" for k in ks)
        rows.append(f"<tr><td>{html.escape(split)}</td><td>{e.get('n')}</td>"
                    f"<td>{fmt(e.get('accuracy'), _ci(e.get('accuracy_ci')))}"
                    f"</td><td>{fmt(rule.get('accuracy'), _ci(rule.get('accuracy_ci')))}</td>{top}"
                    f"<td>{fmt(kap['kappa'], _ci(kap['ci']))} <span class=muted>({kap['weights']})</span></td></tr>")
    if not rows:
        return ""
    head = ("<tr><th>split</th><th>n</th><th>accuracy (argmax)</th><th>accuracy (argmax p/t)</th>"
            + "".join(f"<th>{k.replace('_', '-')} (Wilson)</th>" for k in ks) + "<th>Cohen's kappa</th></tr>")
    return ("<h2>Agreement</h2><p class=muted>argmax p/t: the class that clears its own validation threshold by the "
            "largest factor. Kappa: quadratic weights when evaluate.ordinal is set (ordered grades).</p>"
            f"<table>{head}{''.join(rows)}</table>")


def confusion_figure(split: str, conf: dict) -> str:
    """The confusion matrix of one split: counts and row percentages in each cell, shaded by row percentage."""
    counts, pct, names = np.array(conf["counts"]), np.array(conf["row_percent"], dtype=float), conf["class_names"]
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * n, 1.2 + 0.9 * n))
    ax.imshow(np.nan_to_num(pct), cmap="Blues", vmin=0, vmax=100)
    for (i, j), v in np.ndenumerate(counts):
        share = "–" if np.isnan(pct[i, j]) else f"{pct[i, j]:.1f} %"
        ax.text(j, i, f"{v}\n{share}", ha="center", va="center", fontsize=8,
                color="white" if np.nan_to_num(pct[i, j]) > 50 else "black")
    ax.set_xticks(range(n), names, rotation=30, fontsize=8)
    ax.set_yticks(range(n), [f"{c} (n={t})" for c, t in zip(names, conf["row_totals"])], fontsize=8)
    ax.set(xlabel="predicted (argmax)", ylabel="true", title=f"{split}: counts and % of the true class")
    return img_tag(figure_to_data_uri(fig), f"confusion matrix {split}")


def pairs_table(run: RunFolder, split: str, pairs: list[dict]) -> str:
    """The most frequent confusions of one split with their most confident example images."""
    if not pairs:
        return f"<p class=muted>{html.escape(split)}: no confusions.</p>"
    thumbs = input_thumbnails(run, [x for p in pairs for x in p["examples"]])
    rows = []
    for p in pairs:
        alt = f"{p['true']} as {p['predicted']}"
        imgs = "".join(f"<figure>{img_tag(thumbs[x], f'{alt}: {x}')}<figcaption class=muted>"
                       f"{html.escape(str(x).split('/')[-1][-28:])}</figcaption></figure>"
                       if x in thumbs else f"<span class=muted>{html.escape(str(x))}</span>" for x in p["examples"])
        rows.append(f"<tr><td>{html.escape(p['true'])} → {html.escape(p['predicted'])}</td><td>{p['count']}</td>"
                    f"<td>{100 * p['share_of_true']:.1f} %</td><td class=text><div class=figs>{imgs}</div></td></tr>")
    return (f"<h3>Most frequent confusions on {html.escape(split)}</h3><table><tr><th>true → predicted</th>"
            f"<th>count</th><th>% of true class</th><th>examples (most confident first)</th></tr>"
            f"{''.join(rows)}</table>")


def confusion_section(run: RunFolder, metrics: dict) -> str:
    """Confusion matrices (counts, row %) of every split and the confusion pairs of the last one (test)."""
    splits = [(s, e["classes"]) for s, e in _splits(metrics) if "confusion" in e["classes"]]
    if not splits:
        return ""
    figs = "".join(confusion_figure(s, b["confusion"]) for s, b in splits)
    split, block = splits[-1]
    return (f"<h2>Confusion matrix</h2><div class=figs>{figs}</div>"
            + pairs_table(run, split, block.get("confusion_pairs", [])))


def calibration_section(metrics: dict) -> str:
    """Classwise Brier and ECE per split with the summary ECEs, and the reliability curves of each class."""
    rows, fig_split = [], None
    for split, e in _splits(metrics):
        cal = e["classes"].get("calibration")
        if not cal:
            continue
        fig_split = (split, cal)
        per = "".join(f"{html.escape(n)}: {fmt(c['brier'])} / {fmt(c['ece'])}<br>" for n, c in cal["per_class"].items())
        rows.append(f"<tr><td>{html.escape(split)}</td><td>{fmt(cal['classwise_ece'])}</td>"
                    f"<td>{fmt(cal.get('top_label_ece'))}</td><td>{fmt(cal.get('brier_multiclass'))}</td>"
                    f"<td>{per}</td></tr>")
    if not rows:
        return ""
    split, cal = fig_split
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1, label="perfect calibration")
    for i, (name, c) in enumerate(cal["per_class"].items()):
        rel = c["reliability"]
        ax.plot(rel["mean_predicted"], rel["fraction_positive"], "o-", ms=4, color=f"C{i}",
                label=f"{name}: ECE {c['ece']:.3f}")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction of the class", xlim=(0, 1), ylim=(0, 1),
           title=f"{split}: reliability per class")
    ax.legend(loc="upper left", fontsize=7)
    head = ("<tr><th>split</th><th>classwise ECE</th><th>top-label ECE</th><th>multiclass Brier</th>"
            "<th>per class: Brier / ECE</th></tr>")
    return (f"<h2>Calibration by class</h2><table>{head}{''.join(rows)}</table>"
            f"<div class=figs>{img_tag(figure_to_data_uri(fig), f'calibration reliability per class {split}')}</div>")


def cooccurrence_section(metrics: dict) -> str:
    """Label co-occurrence of each split: cases with both labels and P(column | row) %, labels per case."""
    parts = []
    for split, e in _splits(metrics):
        co = e["classes"].get("cooccurrence")
        if not co:
            continue
        names = co["label_names"]
        head = "<tr><th>label (row) \\ with</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
        body = "".join(f"<tr><td>{html.escape(r)}</td>" + "".join(
            f"<td>{co['counts'][i][j]}" + (f" <span class=muted>({co['conditional_percent'][i][j]:.0f} %)</span>"
                                          if co["conditional_percent"][i][j] is not None else "") + "</td>"
            for j in range(len(names))) + "</tr>" for i, r in enumerate(names))
        per_case = ", ".join(f"{k} labels: {v}" for k, v in co["labels_per_case"].items())
        parts.append(f"<h3>{html.escape(split)} (n = {co['n']})</h3><table>{head}{body}</table>"
                     f"<p class=muted>{per_case}</p>")
    return "<h2>Label co-occurrence</h2>" + "".join(parts) if parts else ""


def any_label_section(run: RunFolder) -> str:
    """The derived "any" label (rows and patients or studies) at its validation threshold."""
    if not run.has("multilabel_any"):
        return ""
    res = run.read_json("multilabel_any")
    group = res.get("group", "patient_id")
    cols = ["auc", *PROPORTIONS]
    head = ("<tr><th>split</th><th>level</th><th>n</th><th>positives</th><th>threshold</th>"
            + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
    rows = []
    for split, r in res["splits"].items():
        for level, key in (("rows", "any"), (group, f"any_{group}")):
            a = r.get(key)
            if not a or "threshold" not in a:
                continue
            ci = {**(a.get("wilson_ci") or {}), "auc": a.get("auc_delong_ci")}
            rows.append(f"<tr><td>{html.escape(split)}</td><td>{html.escape(level)}</td><td>{a['n']}</td>"
                        f"<td>{a['positives']}</td><td>{fmt(a['threshold']['value'])}</td>"
                        + "".join(f"<td>{fmt(a.get(c), _ci(ci.get(c)))}</td>" for c in cols) + "</tr>")
    return ("<h2>\"Any\" label</h2><p class=muted>positive when any label is; probability the largest label "
            f"probability; threshold chosen on validation ({html.escape(str(res.get('threshold', {}).get('method')))})"
            f"</p><table>{head}{''.join(rows)}</table>") if rows else ""


def class_sections(run: RunFolder, cfg, metrics: dict, pred: pd.DataFrame) -> list[str]:
    """Every per-class part of a multiclass or multilabel run's report, in reading order."""
    task = Task.of(cfg.data)
    splits = _splits(metrics)
    if not splits:
        return []
    level = _level(metrics)
    tables = "".join(per_class_table(s, e["classes"], level) for s, e in splits)
    figs = "".join(curves_figure(s, pred[pred["split"] == s], task) for s, _ in splits)
    title = "Per class" if task.is_multiclass else "Per label"
    return [f"<h2>{title} (one vs the rest)</h2><p class=muted>{html.escape(threshold_note(metrics))}</p>", tables,
            f"<h2>{title}: ROC and precision-recall curves</h2><div class=figs>{figs}</div>",
            agreement_table(metrics), confusion_section(run, metrics), calibration_section(metrics),
            cooccurrence_section(metrics), any_label_section(run)]


def threshold_text(t: dict) -> str:
    """The report header's words for the run's operating threshold(s)."""
    def listed(values: dict) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in values.items())

    method = f"{t.get('method')} {t['value']}" if t.get("value") is not None else str(t.get("method"))
    if t.get("per_class"):
        return (f"per-class thresholds ({method}) chosen on validation: {listed(t['per_class'])}; "
                "accuracy and confusions at argmax")
    if t.get("per_label"):
        return f"per-label thresholds ({method}) chosen on validation: {listed(t['per_label'])}"
    if t.get("value") is not None:
        return f"threshold {t.get('method')} = {t['value']:.3f} chosen on validation"
    return f"no threshold: {t['error']}" if t.get("error") else "no threshold"
