"""Suspected mislabels by confident learning (cleanlab) on out-of-fold probabilities: every image is judged by a model
that never trained on it, so a label the other images contradict stands out."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from medfit.task import Task

log = logging.getLogger(__name__)

METHOD = "confident learning (cleanlab.filter.find_label_issues, prune_by_noise_rate) on out-of-fold probabilities"
COLUMNS = ["rank", "image", "patient_id", "fold", "label", "suggested", "p_label", "p_suggested", "quality"]


def class_probabilities(pred: pd.DataFrame, task: Task) -> np.ndarray:
    """(N, K) class probabilities of a predictions table; a binary task's one column becomes [1 - p, p]."""
    p = task.probability_matrix(pred)
    return np.column_stack([1.0 - p[:, 0], p[:, 0]]) if task.is_binary else p / p.sum(axis=1, keepdims=True)


def label_issue_table(pred: pd.DataFrame, task: Task, reviewed: set[str] | frozenset = frozenset()) -> pd.DataFrame:
    """Rows of ``pred`` (out-of-fold predictions with labels) that cleanlab flags as likely mislabelled, ranked by
    label quality (the out-of-fold probability of the given label; lowest first); images in ``reviewed`` (kept by a
    reviewer, ``data.corrections``) are left out. Empty for multilabel tasks (said in the log)."""
    if task.is_multilabel:
        log.info("label issues: not looked for in a multilabel task (confident learning here needs one class per image)")
        return pd.DataFrame(columns=COLUMNS)
    pred = pred.reset_index(drop=True)
    labels = task.labels(pred).astype(int)
    probs = class_probabilities(pred, task)
    if len(pred) < 2 or len(np.unique(labels)) < 2:
        return pd.DataFrame(columns=COLUMNS)
    flagged = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    names = list(task.class_names) or [str(k) for k in range(probs.shape[1])]
    rows = []
    for i in flagged:
        if str(pred.at[i, "image"]) in reviewed:
            continue
        best = int(probs[i].argmax())
        rows.append({"rank": len(rows) + 1, "image": str(pred.at[i, "image"]),
                     "patient_id": pred.at[i, "patient_id"] if "patient_id" in pred else "",
                     "fold": pred.at[i, "fold"] if "fold" in pred else "", "label": names[labels[i]],
                     "suggested": names[best], "p_label": round(float(probs[i, labels[i]]), 4),
                     "p_suggested": round(float(probs[i, best]), 4), "quality": round(float(quality[i]), 4)})
    return pd.DataFrame(rows, columns=COLUMNS)


def label_issue_summary(table: pd.DataFrame, n: int, top: int = 10) -> dict:
    """The record kept in the k-fold result: method, counts and the first flagged images."""
    return {"method": METHOD, "flagged": len(table), "of": int(n),
            "top": [{"rank": int(r["rank"]), "image": r["image"], "label": r["label"], "suggested": r["suggested"],
                     "p_label": float(r["p_label"])} for _, r in table.head(top).iterrows()]}
