"""Inference on metrics: DeLong AUC variance and paired test, Wilson intervals, bootstrap ROC bands."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm, rankdata

from medfit.errors import DataError
from medfit.evaluate.metrics import stratified_bootstrap_indices


def _two_classes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0 or len(pos) + len(neg) != len(y):
        raise DataError("DeLong needs 0/1 labels with at least one case of each class")
    return pos, neg


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for k score vectors on the same cases (fast midrank algorithm).

    ``scores`` is (k, n) or (n,). Sun & Xu (2014): the structural components of DeLong et al. (1988) come from the
    midranks of positives, negatives and all cases, in O(k n log n) instead of O(k m n).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = _two_classes(y)
    m, n = len(pos), len(neg)
    x, z = scores[:, pos], scores[:, neg]
    tx = rankdata(x, axis=1)
    tz = rankdata(z, axis=1)
    t = rankdata(np.concatenate([x, z], axis=1), axis=1)
    aucs = (t[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (t[:, :m] - tx) / n  # per positive: share of negatives it outranks
    v01 = 1 - (t[:, m:] - tz) / m  # per negative: share of positives that outrank it
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(scores), len(scores)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, s10 / m + s01 / n


def delong_auc_ci(y: np.ndarray, p: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, lower, upper): the DeLong asymptotic normal interval, clipped to [0, 1]."""
    aucs, cov = delong_covariance(y, p)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    q = norm.ppf(0.5 + level / 2)
    return float(aucs[0]), max(0.0, float(aucs[0]) - q * se), min(1.0, float(aucs[0]) + q * se)


@dataclass
class DeLongResult:
    """Paired DeLong comparison of two AUCs measured on the same cases."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float
    ci: tuple[float, float]
    n: int
    positives: int

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def delong_test(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, level: float = 0.95) -> DeLongResult:
    """Two-sided paired DeLong test of AUC(a) - AUC(b) = 0, with the normal CI of the difference."""
    y = np.asarray(y).astype(int)
    if not (len(y) == len(p_a) == len(p_b)):
        raise DataError(f"DeLong needs both score vectors on the same cases ({len(y)} labels, {len(p_a)} and {len(p_b)} scores)")
    aucs, cov = delong_covariance(y, np.vstack([p_a, p_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    if se == 0.0:
        z, p = (0.0, 1.0) if diff == 0 else (float("inf") * np.sign(diff), 0.0)
    else:
        z = diff / se
        p = float(2 * norm.sf(abs(z)))
    q = norm.ppf(0.5 + level / 2)
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, se, float(z), p, (diff - q * se, diff + q * se),
                        int(len(y)), int(y.sum()))


def wilson_interval(successes, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | tuple[float, float]:
    """Wilson score interval for a proportion (vectorised; NaN where n == 0)."""
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    q = norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1 + q**2 / n
        centre = (phat + q**2 / (2 * n)) / denom
        half = q * np.sqrt(phat * (1 - phat) / n + q**2 / (4 * n**2)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def proportion_intervals(confusion: dict, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Wilson intervals of sensitivity, specificity, PPV, NPV and accuracy from TP/FP/TN/FN counts."""
    tp, fp, tn, fn = (int(confusion[k]) for k in ("tp", "fp", "tn", "fn"))
    pairs = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
             "npv": (tn, tn + fn), "accuracy": (tp + tn, tp + tn + fp + fn)}
    return {k: wilson_interval(a, b, level) for k, (a, b) in pairs.items() if b}


def roc_ci_band(y: np.ndarray, p: np.ndarray, n: int = 200, level: float = 0.95, seed: int = 0,
                grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr grid, lower tpr, upper tpr): pointwise stratified-bootstrap band of the ROC curve (vertical averaging)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    grid = np.linspace(0, 1, 101) if grid is None else grid
    thresholds = np.r_[np.inf, np.unique(p)[::-1]]
    above = (p[:, None] >= thresholds[None, :]).astype(float)  # (cases, thresholds)
    # every resample as case multiplicities: its TP/FP counts at all thresholds are one matrix product
    counts = np.array([np.bincount(idx, minlength=len(y)) for idx in stratified_bootstrap_indices(y, n, seed)], float)
    tpr = counts[:, y == 1] @ above[y == 1] / (y == 1).sum()
    fpr = counts[:, y == 0] @ above[y == 0] / (y == 0).sum()
    curves = np.array([np.interp(grid, f, t) for f, t in zip(fpr, tpr)])
    alpha = (1 - level) / 2
    return grid, np.quantile(curves, alpha, axis=0), np.quantile(curves, 1 - alpha, axis=0)
