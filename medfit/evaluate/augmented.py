"""Augmented prediction (key slice +- k combined per study; binary, multiclass and multilabel) and multilabel
metrics with a derived "any" label."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from medfit.errors import DataError
from medfit.evaluate.combine import RULES, combine_class_probabilities, combine_probabilities  # noqa: F401
from medfit.evaluate.stats import delong_test
from medfit.evaluate.studies import internal_sites, study_level_metrics
from medfit.run_folder import RunFolder

def studies_with_key_slice(pred: pd.DataFrame, columns: tuple, study: str = "study_id", offset: str = "offset"):
    """(study id, its rows, its key-slice row) per study of slice predictions with neighbours; missing columns or a
    study without its key slice (offset 0) are refused."""
    missing = [c for c in (study, offset, *columns) if c not in pred.columns]
    if missing:
        raise DataError(f"predictions lack columns {missing}; augmented prediction needs volume.neighbours > 0 "
                        "in slice mode (rows per key slice +- k with study_id and offset)")
    for sid, g in pred.groupby(study, sort=False):
        key = g[g[offset] == 0]
        if key.empty:
            raise DataError(f"study {sid}: no key-slice row (offset 0) in the predictions")
        yield sid, g, key


def study_class_predictions(pred: pd.DataFrame, labels: list[str], prob_cols: list[str], task: str,
                            rule: str = "mean_prob", study: str = "study_id", offset: str = "offset") -> pd.DataFrame:
    """Per study (multiclass or multilabel): labels of the key slice, its probabilities (``single_<col>``) and the
    combined probabilities of all its slices (``<col>``, the same names as the slice rows)."""
    rows = []
    for sid, g, key in studies_with_key_slice(pred, (*labels, *prob_cols), study, offset):
        combined = combine_class_probabilities(g[prob_cols].to_numpy(), rule, task)
        rows.append({study: sid, "split": g["split"].iloc[0] if "split" in g else "",
                     **{c: int(key[c].iloc[0]) for c in labels},
                     **{f"single_{c}": float(key[c].iloc[0]) for c in prob_cols},
                     **dict(zip(prob_cols, map(float, combined))), "slices": len(g)})
    return pd.DataFrame(rows)


def study_predictions(pred: pd.DataFrame, label: str, rule: str = "mean_prob", prob: str = "prob",
                      study: str = "study_id", offset: str = "offset") -> pd.DataFrame:
    """Per study: label, the key slice's probability (offset 0) and the combined probability of all its slices."""
    rows = []
    for sid, g, key in studies_with_key_slice(pred, (label, prob), study, offset):
        rows.append({study: sid, "split": g["split"].iloc[0] if "split" in g else "",
                     **{c: g[c].iloc[0] for c in ("patient_id", "site") if c in g}, label: int(key[label].iloc[0]),
                     "single": float(key[prob].iloc[0]), "combined": combine_probabilities(g[prob].to_numpy(), rule),
                     "slices": len(g)})
    return pd.DataFrame(rows)


def augmented_comparison(studies: pd.DataFrame, label: str) -> dict:
    """Single-slice vs combined AUC on the same studies with the paired DeLong test of the difference."""
    y = studies[label].to_numpy().astype(int)
    if len(np.unique(y)) < 2:
        return {"studies": int(len(y)), "positives": int(y.sum()), "auc_single": None, "auc_combined": None,
                "p_value": None, "note": "one class only: AUC undefined"}
    res = delong_test(y, studies["combined"].to_numpy(), studies["single"].to_numpy())
    return {"studies": int(len(y)), "positives": int(y.sum()), "auc_single": res.auc_b, "auc_combined": res.auc_a,
            "difference": res.difference, "difference_ci": list(res.ci), "p_value": res.p_value}


def augmented_table(results: dict) -> str:
    """A Markdown table: split, studies, single-slice AUC, combined AUC, difference, DeLong p."""
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| split | studies | single-slice AUC | combined AUC | difference | DeLong p |", "|---|---|---|---|---|---|"]
    for split, r in results["splits"].items():
        lines.append(f"| {split} | {r['studies']} | {fmt(r['auc_single'])} | {fmt(r['auc_combined'])} | "
                     f"{fmt(r.get('difference'))} | {fmt(r['p_value'])} |")
    return "\n".join(lines)


def evaluate_augmented(run: RunFolder, rule: str | None = None, cfg=None) -> dict:
    """Write the run's augmented-prediction results, table and study predictions (binary task, slice mode with
    neighbours); ``cfg``: evaluation settings other than the run's saved config."""
    cfg = cfg or run.read_config()
    rule = rule or cfg.volume.combine
    label = cfg.data.label_columns[0]
    studies = study_predictions(run.read_predictions(), label, rule)
    results = {"rule": rule, "neighbours": cfg.volume.neighbours, "splits": {}}
    for split, part in studies.groupby("split", sort=False):
        results["splits"][split] = augmented_comparison(part, label)
    results["study_level"] = study_level_metrics(studies, label, cfg.evaluate, internal_sites(run.read_manifest()),
                                                 rule, cfg.seed)
    run.write_csv("study_predictions", studies)
    run.write_json("augmented", results)
    run.write_text("augmented_table", augmented_table(results) + "\n")
    return results


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def multilabel_metrics(y: np.ndarray, p: np.ndarray, names: list[str], threshold: float = 0.5,
                       any_rule: str = "max") -> dict:
    """Per-label AUC/sensitivity/specificity, their macro means, and a derived "any" label (any positive; its
    probability the max label probability, or 1 - prod(1 - p) with ``any_rule="noisy_or"``)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(names):
        raise DataError(f"multilabel metrics need labels and probabilities of shape (N, {len(names)}); "
                        f"got {y.shape} and {p.shape}")

    def scores(yy: np.ndarray, pp: np.ndarray) -> dict:
        pos, neg = yy == 1, yy == 0
        hit = pp >= threshold
        return {"auc": _auc(yy, pp), "positives": int(pos.sum()),
                "sensitivity": float(hit[pos].mean()) if pos.any() else None,
                "specificity": float((~hit[neg]).mean()) if neg.any() else None}

    per_label = {n: scores(y[:, j], p[:, j]) for j, n in enumerate(names)}
    macro = {}
    for key in ("auc", "sensitivity", "specificity"):
        vals = [m[key] for m in per_label.values() if m[key] is not None]
        macro[key] = float(np.mean(vals)) if vals else None
    p_any = p.max(axis=1) if any_rule == "max" else 1 - np.prod(1 - p, axis=1)
    return {"per_label": per_label, "macro": macro, "any": scores(y.max(axis=1), p_any)}


def patient_any(pred: pd.DataFrame, labels: list[str], group: str = "patient_id") -> pd.DataFrame:
    """Per patient (or study): "any" label = any label positive on any row; its probability the max over both."""
    missing = [c for c in [group, *labels, *(f"prob_{n}" for n in labels)] if c not in pred.columns]
    if missing:
        raise DataError(f"predictions lack columns {missing}; the 'any' label needs a multilabel run's predictions")
    out = pd.DataFrame({"y_any": pred[labels].max(axis=1).astype(int),
                        "p_any": pred[[f"prob_{n}" for n in labels]].max(axis=1), group: pred[group],
                        "split": pred["split"] if "split" in pred else ""})
    return out.groupby([group, "split"], sort=False).max().reset_index()
