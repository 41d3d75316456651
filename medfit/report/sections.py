"""More report sections: ROC band, PR curve, calibration, per-site table, Wilson CIs, saliency gallery; the per-class
sections of multiclass and multilabel runs (report.classes) and the explanation checks (report.explanations)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve  # noqa: E402

from medfit.evaluate.stats import roc_ci_band  # noqa: E402
from medfit.report.audit_section import audit_section  # noqa: E402
from medfit.report.calibration_slope import calibration_slope_section  # noqa: E402
from medfit.report.classes import class_sections  # noqa: E402
from medfit.report.conformal import conformal_section  # noqa: E402
from medfit.report.covariates import covariates_section  # noqa: E402
from medfit.report.decision_curve import decision_curve_section  # noqa: E402
from medfit.report.explanations import class_gallery_section, quality_section, study_level_section  # noqa: E402
from medfit.report.ood_section import ood_section  # noqa: E402
from medfit.report.page import figure_to_data_uri, fmt, img_tag  # noqa: E402
from medfit.report.referral import referral_section  # noqa: E402
from medfit.report.sample_size import sample_size_section  # noqa: E402
from medfit.report.seeds import seeds_section  # noqa: E402
from medfit.report.studies import study_section  # noqa: E402
from medfit.report.subgroups import subgroups_section  # noqa: E402
from medfit.report.tta import tta_section  # noqa: E402
from medfit.report.weights import warnings_block, weights_section  # noqa: E402
from medfit.run_folder import RunFolder  # noqa: E402

SITE_COLUMNS = ["auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"]
GROUP_TITLES = {"TP": "true positives", "FP": "false positives", "TN": "true negatives", "FN": "false negatives"}


def _evaluable(pred: pd.DataFrame, label: str):
    for split, part in pred.groupby("split", sort=False):
        if part[label].nunique() == 2:
            yield split, part[label].to_numpy().astype(int), part["prob"].to_numpy()


def roc_band_figure(pred: pd.DataFrame, label: str, metrics: dict, n_boot: int = 200) -> str:
    """ROC of each split with its pointwise stratified-bootstrap band (the CI level of the run)."""
    level = metrics.get("ci_level", 0.95)
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (split, y, p) in enumerate(_evaluable(pred, label)):
        fpr, tpr, _ = roc_curve(y, p)
        grid, lo, hi = roc_ci_band(y, p, n=n_boot, level=level, seed=0)
        ax.fill_between(grid, lo, hi, color=f"C{i}", alpha=0.18, lw=0)
        auc = metrics["splits"].get(split, {}).get("auc")
        ax.plot(fpr, tpr, color=f"C{i}", label=f"{split}: AUC {auc:.3f}" if auc is not None else split)
    ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC with {int(level * 100)} % bootstrap band")
    ax.legend(loc="lower right", fontsize=8)
    return img_tag(figure_to_data_uri(fig), "ROC curve with confidence band")


def pr_figure(pred: pd.DataFrame, label: str) -> str:
    """Precision-recall curve of each split, average precision and prevalence in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (split, y, p) in enumerate(_evaluable(pred, label)):
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, color=f"C{i}", label=f"{split}: AP {average_precision_score(y, p):.3f} (prevalence {y.mean():.2f})")
        ax.axhline(y.mean(), color=f"C{i}", ls=":", lw=1)
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return img_tag(figure_to_data_uri(fig), "precision-recall curve")


def calibration_figure(metrics: dict) -> str:
    """Reliability diagram of each split from the run's metrics, with Brier score and ECE."""
    splits = {s: e["calibration"] for s, e in metrics.get("splits", {}).items() if e.get("calibration")}
    if not splits:
        return ""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="#aaa", lw=1, label="perfect calibration")
    for i, (split, cal) in enumerate(splits.items()):
        rel = cal["reliability"]
        ax.plot(rel["mean_predicted"], rel["fraction_positive"], "o-", color=f"C{i}", ms=4,
                label=f"{split}: Brier {cal['brier']:.3f}, ECE {cal['ece']:.3f}")
        scaled = metrics["splits"][split].get("calibration_scaled")
        if scaled:
            r2 = scaled["reliability"]
            ax.plot(r2["mean_predicted"], r2["fraction_positive"], "x:", color=f"C{i}", ms=4,
                    label=f"{split} after temperature: ECE {scaled['ece']:.3f}")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction positive", title="Calibration",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=7)
    return img_tag(figure_to_data_uri(fig), "calibration reliability diagram")


def wilson_table(metrics: dict) -> str:
    """Wilson score intervals of the proportions at the carried threshold."""
    rows = [(s, e["wilson_ci"]) for s, e in metrics.get("splits", {}).items() if e.get("wilson_ci")]
    if not rows:
        return ""
    keys = ["sensitivity", "specificity", "ppv", "npv", "accuracy"]
    head = "<tr><th>split</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    body = "".join(f"<tr><td>{html.escape(s)}</td>" + "".join(
        f"<td>{ci[k][0]:.3f}–{ci[k][1]:.3f}</td>" if ci.get(k) and ci[k][0] is not None else "<td>–</td>" for k in keys)
        + "</tr>" for s, ci in rows)
    return f"<h3>Wilson {int(metrics.get('ci_level', 0.95) * 100)} % intervals</h3><table>{head}{body}</table>"


def site_table_html(rows: list[dict], protocol: str = "") -> str:
    """Per-site rows (internal vs external), like a study's internal/external validation table."""
    if not rows:
        return ""
    cols = [c for c in SITE_COLUMNS if any(c in r for r in rows)]
    has_role = any("role" in r for r in rows)
    head = "<tr><th>split</th><th>site</th>" + ("<th>role</th>" if has_role else "") + "<th>n</th><th>positives</th>" + \
        "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['split'])}</td><td>{html.escape(str(r['site']))}</td>"
        + (f"<td>{html.escape(r.get('role', ''))}</td>" if has_role else "")
        + f"<td>{r['n']}</td><td>{r.get('positives', '')}</td>"
        + "".join(f"<td>{fmt(r.get(c), r.get(c + '_ci'))}</td>" for c in cols) + "</tr>" for r in rows)
    note = f"<p class=muted>{html.escape(protocol)}</p>" if protocol else ""
    pseudo = "<p class=muted>pseudo-sites: patient-id ranges of one data set, not separate hospitals.</p>" \
        if any(str(r["site"]).startswith("pseudo-") for r in rows) else ""
    return f"{note}{pseudo}<table>{head}{body}</table>"


def saliency_gallery(run: RunFolder) -> str:
    """The TP/FP/TN/FN overlays written by ``medfit explain RUN --gallery``, embedded as data URIs."""
    if not run.has("gallery"):
        return "<p class=muted>No saliency gallery yet: run <code>medfit explain RUN --gallery</code>.</p>"
    g = run.read_json("gallery")
    out = [f"<p class=muted>{html.escape(g['method'])} on the {html.escape(g['split'])} split at threshold "
           f"{g['threshold']:.3f}; most confident cases of each group.</p>"]
    for group in ("TP", "FP", "TN", "FN"):
        cases = [c for c in g["cases"] if c["group"] == group]
        if not cases:
            out.append(f"<h3>{GROUP_TITLES[group]}</h3><p class=muted>none</p>")
            continue
        imgs = []
        for c in cases:
            png = run.path / c["png"]
            if png.is_file():
                uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
                alt = f"{group} {c['image']}"
                imgs.append(f'<figure>{img_tag(uri, alt)}<figcaption class=muted>'
                            f'{html.escape(Path(c["image"]).name[-40:])}</figcaption></figure>')
        out.append(f"<h3>{GROUP_TITLES[group]}</h3><div class=\"figs gallery\">{''.join(imgs)}</div>")
    keys = sorted(run.study_saliency.glob("*.png")) if run.study_saliency.is_dir() else []
    if keys:  # slice-mode study runs: key slices of the first studies, as prepared in training
        imgs = "".join(img_tag("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(), p.stem) for p in keys)
        out.append(f"<h3>key slices</h3><div class=\"figs gallery\">{imgs}</div>")
    return "".join(out)


def parameters_section(metrics: dict, model_name: str, finetune: str) -> str:
    """Trainable and total parameters of the network."""
    p = metrics.get("parameters") or {}
    if not p:
        return ""
    share = p["trainable"] / p["total"] if p.get("total") else float("nan")
    return (f"<table><tr><th>model</th><th>fine-tuning</th><th>trainable</th><th>total</th><th>trainable share</th></tr>"
            f"<tr><td>{html.escape(model_name)}</td><td>{html.escape(finetune)}</td><td>{p['trainable']:,}</td>"
            f"<td>{p['total']:,}</td><td>{share:.1%}</td></tr></table>")


def extra_sections(run: RunFolder, cfg, metrics: dict, pred: pd.DataFrame) -> list[str]:
    """HTML parts appended to a run's report."""
    label = cfg.data.label_columns[0]
    parts = [warnings_block(metrics)]
    if metrics.get("task") == "binary" and "prob" in pred:
        figs = [roc_band_figure(pred, label, metrics), pr_figure(pred, label), calibration_figure(metrics)]
        parts += ["<h2>Discrimination and calibration</h2>", '<div class="figs">' + "".join(f for f in figs if f) + "</div>",
                  wilson_table(metrics)]
        sites = metrics.get("sites")
        protocol = ""
        if run.has("sites"):
            saved = run.read_json("sites")
            sites, protocol = saved.get("rows", sites), saved.get("protocol", "")
        if sites:
            parts += ["<h2>Per site (threshold carried from validation)</h2>", site_table_html(sites, protocol)]
        parts += ["<h2>Saliency gallery</h2>", saliency_gallery(run), quality_section(run)]
    else:
        parts += [*class_sections(run, cfg, metrics, pred), class_gallery_section(run), quality_section(run)]
    # binary: study-level metrics at the val studies' threshold and per site; else per-class comparison
    parts.append(study_section(run) if metrics.get("task") == "binary" else study_level_section(run))
    parts += [calibration_slope_section(metrics), decision_curve_section(metrics), conformal_section(metrics),
              referral_section(metrics), subgroups_section(metrics), sample_size_section(metrics),
              seeds_section(metrics), tta_section(metrics)]
    parts.append(covariates_section(run, cfg))
    parts += ["<h2>Trainable parameters</h2>", parameters_section(metrics, model_title(cfg), fine_tuning(cfg)),
              weights_section(metrics)]
    parts.append(site_counts(run.file("manifest"), cfg.data.label_columns[0], list(cfg.data.class_names)))
    parts.append(audit_section(run))
    parts.append(ood_section(run))
    return [p for p in parts if p]


def model_title(cfg) -> str:
    """What the report calls the model: the network name for timm/MONAI kinds, else the kind (and its source)."""
    m = cfg.model
    if m.kind in ("timm", "monai3d"):
        return m.name
    if m.kind in ("open_clip", "clip_zero_shot"):
        return f"{m.kind}: {m.clip.source}"
    if m.kind == "vlm":
        return f"vlm: {cfg.vlm.model}"
    return m.kind


def fine_tuning(cfg) -> str:
    """The fine-tuning method in words: zero-shot kinds, the VLM's method, or model.finetune."""
    if cfg.model.kind == "clip_zero_shot":
        return "zero-shot"
    if cfg.model.kind == "vlm":
        return {"none": "zero-shot"}.get(cfg.vlm.finetune, cfg.vlm.finetune)
    return cfg.model.finetune


def site_counts(manifest_csv: Path, label: str, class_names: list[str]) -> str:
    """Images per site, split and class (only when the data have more than one site)."""
    if not manifest_csv.is_file():
        return ""
    m = pd.read_csv(manifest_csv)
    if "site" not in m or m["site"].nunique() < 2 or label not in m:
        return ""
    table = m.groupby(["site", "split", label]).size().unstack(fill_value=0)
    if class_names and len(class_names) == len(table.columns):
        table.columns = [class_names[int(c)] for c in table.columns]
    return "<h2>Data by site</h2>" + table.to_html(border=0)
