"""Per-class (per-label) one-vs-rest ROC and precision-recall curve points for plotting."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from medfit.run_folder import json_safe
from medfit.evaluate.multiclass import indicator_matrix


def roc_points(y: np.ndarray, p: np.ndarray) -> dict:
    """FPR, TPR and thresholds of one 0/1 label (collinear points dropped; the first threshold capped at 1)."""
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=True)
    return {"fpr": fpr, "tpr": tpr, "thresholds": np.minimum(thr, 1.0)}


def pr_points(y: np.ndarray, p: np.ndarray) -> dict:
    """Precision, recall (recall decreasing; the last point is precision 1 at recall 0), thresholds and AP."""
    precision, recall, thr = precision_recall_curve(y, p)
    return {"precision": precision, "recall": recall, "thresholds": thr,
            "average_precision": float(average_precision_score(y, p)), "prevalence": float(np.mean(y))}


def ovr_curves(y: np.ndarray, prob: np.ndarray, names: list[str]) -> dict:
    """Per class: ROC and PR points of that class against the rest (None for a class with one side missing)."""
    prob = np.asarray(prob, dtype=float)
    Y = indicator_matrix(y, prob.shape[1])
    out = {}
    for k, name in enumerate(names):
        present = 0 < Y[:, k].sum() < len(Y)
        out[name] = {"roc": roc_points(Y[:, k], prob[:, k]), "pr": pr_points(Y[:, k], prob[:, k])} if present else None
    return json_safe(out)
