"""Multiclass and multilabel metrics: macro/weighted one-vs-rest AUC, per-class sensitivity/specificity, confusion,
top-k accuracy, and the label helpers (indicator matrix, bootstrap strata) the other multiclass modules share."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from medfit.errors import DataError
from medfit.run_folder import json_safe
from medfit.evaluate.metrics import auc, binary_metrics_without_auc
from medfit.evaluate.stats import wilson_interval


def ovr_auc(y: np.ndarray, prob: np.ndarray, average: str = "macro") -> float:
    """One-vs-rest AUC averaged over the classes present (macro: equal weight; weighted: by prevalence)."""
    y = np.asarray(y).astype(int)
    per = per_class_auc(y, prob)
    present = [k for k in range(prob.shape[1]) if 0 < (y == k).sum() < len(y)]
    if not present:
        return float("nan")
    values = np.array([per[k] for k in present])
    if average == "weighted":
        w = np.array([(y == k).sum() for k in present], dtype=float)
        return float(np.sum(values * w) / w.sum())
    return float(values.mean())


def per_class_auc(y: np.ndarray, prob: np.ndarray) -> list[float]:
    """AUC of each class against the rest (NaN for a class absent or alone)."""
    y = np.asarray(y).astype(int)
    return [auc((y == k).astype(int), prob[:, k]) for k in range(prob.shape[1])]


def multiclass_metrics(y: np.ndarray, prob: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Macro and weighted OvR AUC, accuracy, per-class sensitivity/specificity/PPV/AUC and the confusion matrix."""
    y = np.asarray(y).astype(int)
    k = prob.shape[1]
    names = list(class_names or [str(i) for i in range(k)])
    pred = prob.argmax(axis=1)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    per_class = {}
    aucs = per_class_auc(y, prob)
    for c in range(k):
        tp = cm[c, c]
        fn = cm[c].sum() - tp
        fp = cm[:, c].sum() - tp
        tn = cm.sum() - tp - fn - fp
        per_class[names[c]] = {"n": int(cm[c].sum()), "auc": aucs[c],
                               "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
                               "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
                               "ppv": float(tp / (tp + fp)) if tp + fp else float("nan")}
    return {"auc_macro": ovr_auc(y, prob, "macro"), "auc_weighted": ovr_auc(y, prob, "weighted"),
            "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
            "per_class": per_class, "confusion_matrix": cm.tolist(), "class_names": names}


def multilabel_metrics(y: np.ndarray, prob: np.ndarray, thresholds: list[float], labels: list[str]) -> dict:
    """Per-label AUC and threshold metrics (each label at its own threshold), and macro/micro AUC."""
    y = np.asarray(y).astype(int)
    per_label = {}
    for j, name in enumerate(labels):
        per_label[name] = {"auc": auc(y[:, j], prob[:, j]), "positives": int(y[:, j].sum()),
                           "threshold": float(thresholds[j]),
                           **binary_metrics_without_auc(y[:, j], prob[:, j], thresholds[j])}
    valid = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    macro = float(np.mean([per_label[labels[j]]["auc"] for j in valid])) if valid else float("nan")
    try:
        micro = float(roc_auc_score(y[:, valid], prob[:, valid], average="micro")) if valid else float("nan")
    except ValueError:
        micro = float("nan")
    return {"auc_macro": macro, "auc_micro": micro, "per_label": per_label}


def indicator_matrix(y: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) 0/1 matrix: one-hot of class indices (N,), or a multilabel (N, K) matrix checked and passed through."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] != n_classes or not np.isin(y, (0, 1)).all():
            raise DataError(f"multilabel labels must be 0/1 of shape (N, {n_classes}); got shape {y.shape}")
        return y.astype(int)
    y = y.astype(int)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"class labels must lie in 0..{n_classes - 1} (one per prob_ column); got {y.min()}..{y.max()}")
    return np.eye(n_classes, dtype=int)[y]


def label_strata(y: np.ndarray) -> np.ndarray:
    """Bootstrap strata: the class (multiclass) or the label pattern (multilabel; patterns seen once pooled as -1)."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y.astype(int)
    _, codes, counts = np.unique(y.astype(int), axis=0, return_inverse=True, return_counts=True)
    codes = codes.ravel()
    return np.where(counts[codes] > 1, codes, -1)


def top_k_accuracy(y: np.ndarray, prob: np.ndarray, ks: tuple[int, ...] = (1, 2, 3), level: float = 0.95) -> dict:
    """Share of cases whose true class is among the k most probable, with Wilson CIs, for each k < K."""
    y, prob = np.asarray(y).astype(int), np.asarray(prob, dtype=float)
    rank = (prob > prob[np.arange(len(y)), y][:, None]).sum(axis=1)  # classes strictly more probable than the truth
    out = {}
    for k in (k for k in ks if k < prob.shape[1] or k == 1):
        hits = int((rank < k).sum())
        lo, hi = wilson_interval(hits, len(y), level)
        out[f"top_{k}"] = {"accuracy": hits / len(y) if len(y) else None, "ci": [lo, hi], "hits": hits, "n": len(y)}
    return json_safe(out)
