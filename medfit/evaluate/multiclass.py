"""Multiclass and multilabel metrics: macro/weighted one-vs-rest AUC, per-class sensitivity/specificity, confusion."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from medfit.evaluate.metrics import auc, binary_metrics_without_auc


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
