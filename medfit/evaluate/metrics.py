"""Classification metrics at a threshold, threshold choice on validation, and stratified bootstrap CIs."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from medfit.errors import DataError

FOLD_METRICS = ["auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def confusion_counts(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    """TP, FP, TN, FN with ``p >= threshold`` called positive."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    return {"tp": int(((pred == 1) & (y == 1)).sum()), "fp": int(((pred == 1) & (y == 0)).sum()),
            "tn": int(((pred == 0) & (y == 0)).sum()), "fn": int(((pred == 0) & (y == 1)).sum())}


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC, accuracy, sensitivity, specificity, PPV, NPV and F1 at ``threshold``."""
    return {"auc": auc(y, p), **binary_metrics_without_auc(y, p, threshold)}


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 on the ROC curve."""
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def target_threshold(y: np.ndarray, p: np.ndarray, target: float, kind: str) -> float:
    """The highest threshold reaching ``target`` sensitivity, or the lowest reaching ``target`` specificity."""
    fpr, tpr, thr = roc_curve(y, p)
    thr = np.minimum(thr, 1.0)
    if kind == "sensitivity":
        ok = np.flatnonzero(tpr >= target)
        return float(thr[ok[0]])
    ok = np.flatnonzero(1 - fpr >= target)
    return float(thr[ok[-1]])


def choose_threshold(y: np.ndarray, p: np.ndarray, method: str = "youden", value: float = 0.5) -> float:
    """Pick the operating threshold on validation: youden, fixed, or a target sensitivity/specificity."""
    if method == "fixed":
        return float(value)
    if len(np.unique(y)) < 2:
        raise DataError("the validation split has one class only; cannot choose a threshold (use evaluate.threshold: fixed)")
    if method == "youden":
        return youden_threshold(y, p)
    if method in ("sensitivity", "specificity"):
        return target_threshold(y, p, value, method)
    raise DataError(f"unknown threshold method {method!r}")


def stratified_bootstrap_indices(y: np.ndarray, n: int, seed: int = 0):
    """Yield ``n`` resamples that keep the class counts of ``y`` (resampling within each class)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)]
    for _ in range(n):
        yield np.concatenate([rng.choice(idx, size=len(idx), replace=True) for idx in strata])


def bootstrap_ci(metric: Callable[[np.ndarray, np.ndarray], dict[str, float]], y: np.ndarray, p: np.ndarray,
                 n: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile CIs of every metric that ``metric(y, p)`` returns, from a stratified bootstrap."""
    samples: dict[str, list[float]] = {}
    for idx in stratified_bootstrap_indices(y, n, seed):
        for key, value in metric(y[idx], p[idx]).items():
            samples.setdefault(key, []).append(value)
    alpha = (1 - level) / 2
    return {k: (float(np.nanquantile(v, alpha)), float(np.nanquantile(v, 1 - alpha))) for k, v in samples.items()}


def fast_binary_metrics(threshold: float) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """binary_metrics at a fixed threshold with a rank-based AUC (fast enough for 1000+ resamples)."""
    def metric(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        m = binary_metrics_without_auc(y, p, threshold)
        n1 = int(y.sum())
        n0 = len(y) - n1
        ranks = rankdata(p)
        m["auc"] = float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")
        return m

    return metric


def binary_metrics_without_auc(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """The threshold metrics of binary_metrics, without the AUC."""
    c = confusion_counts(y, p, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    return {"accuracy": _safe_div(tp + tn, tp + tn + fp + fn), "sensitivity": _safe_div(tp, tp + fn),
            "specificity": _safe_div(tn, tn + fp), "ppv": _safe_div(tp, tp + fp), "npv": _safe_div(tn, tn + fn),
            "f1": _safe_div(2 * tp, 2 * tp + fp + fn)}
