"""Test-time augmentation against the plain prediction on the same cases: AUC with and without, paired DeLong test
(binary), per split and, when a study has several rows (key slice +- k), per study."""
from __future__ import annotations

import pandas as pd

from medfit.evaluate.combine import combine_probabilities
from medfit.evaluate.columns import NO_TTA
from medfit.evaluate.multiclass import ovr_auc
from medfit.evaluate.stats import delong_test
from medfit.task import Task


def compare(y, with_tta, without, task: Task, level: float = 0.95) -> dict:
    """AUC with and without TTA on the same cases; binary: the paired DeLong test of the difference."""
    out = {"n": int(len(y))}
    if task.is_binary:
        if 0 < y.sum() < len(y):
            res = delong_test(y, with_tta, without, level)
            out.update({"positives": int(y.sum()), "auc_tta": res.auc_a, "auc_no_tta": res.auc_b,
                        "difference": res.difference, "difference_ci": list(res.ci), "p_value": res.p_value,
                        "test": "paired DeLong"})
        return out
    a, b = ovr_auc(y, with_tta), ovr_auc(y, without)
    return {**out, "auc_tta": a, "auc_no_tta": b, "difference": a - b, "test": "none (macro OvR AUC, no paired test)"}


def study_level(part: pd.DataFrame, label: str, rule: str) -> pd.DataFrame:
    """Per study: its label (the key slice's) and both probabilities combined over its rows by ``rule``."""
    rows = [{"y": int(g[label].iloc[0]), "tta": combine_probabilities(g["prob"].to_numpy(), rule),
             "plain": combine_probabilities(g[NO_TTA + "prob"].to_numpy(), rule)}
            for _, g in part.groupby("study_id", sort=False)]
    return pd.DataFrame(rows)


def tta_comparison(pred: pd.DataFrame, task: Task, views: list[str], rule: str = "mean_prob",
                   level: float = 0.95) -> dict | None:
    """Per evaluated split (and per study where studies have several rows); None without TTA columns."""
    cols = task.probability_columns
    if task.is_multilabel or NO_TTA + cols[0] not in pred:
        return None
    out = {"views": list(views), "splits": {}, "studies": {}}
    for split, part in pred[pred["split"] != "train"].groupby("split", sort=False):
        p, q = part[cols].to_numpy(dtype=float), part[[NO_TTA + c for c in cols]].to_numpy(dtype=float)
        y = task.labels(part)
        out["splits"][split] = compare(y, p[:, 0], q[:, 0], task, level) if task.is_binary \
            else compare(y, p, q, task, level)
        if task.is_binary and "study_id" in part and part.groupby("study_id").size().max() > 1:
            s = study_level(part, task.label, rule)
            out["studies"][split] = compare(s["y"].to_numpy(), s["tta"].to_numpy(), s["plain"].to_numpy(), task, level)
    return out
