"""Calibration: Brier score, expected calibration error, reliability curve, temperature scaling fitted on validation,
and the classwise (per class or label) version for multiclass and multilabel."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.metrics import brier_score_loss

from medfit.evaluate.jsonsafe import json_safe
from medfit.evaluate.multiclass import indicator_matrix

EPS = 1e-7


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the predicted probability of the positive class."""
    return float(brier_score_loss(np.asarray(y).astype(int), np.asarray(p, dtype=float)))


def reliability_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Per equal-width bin of predicted probability: mean prediction, observed positive rate and count (empty bins dropped)."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0, 1)
    # bins (k/n, (k+1)/n]; p == 0 goes to the first bin, as in sklearn's calibration_curve
    idx = np.clip(np.ceil(p * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    keep = count > 0
    mean_pred = np.bincount(idx, weights=p, minlength=n_bins)[keep] / count[keep]
    frac_pos = np.bincount(idx, weights=y, minlength=n_bins)[keep] / count[keep]
    return {"mean_predicted": mean_pred, "fraction_positive": frac_pos, "count": count[keep],
            "bin_lower": np.arange(n_bins)[keep] / n_bins}


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE: count-weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    curve = reliability_curve(y, p, n_bins)
    w = curve["count"] / curve["count"].sum()
    return float(np.sum(w * np.abs(curve["fraction_positive"] - curve["mean_predicted"])))


def fit_temperature(y: np.ndarray, p: np.ndarray, task: str = "binary") -> float:
    """The temperature T > 0 minimising the validation NLL of softmax(logits / T) (sigmoid for binary)."""
    y = np.asarray(y)
    z = _logits(p, task)

    def nll(log_t: float) -> float:
        t = np.exp(log_t)
        if task == "multiclass":
            return float(-log_softmax(z / t, axis=1)[np.arange(len(y)), y.astype(int)].mean())
        q = np.clip(expit(z / t), EPS, 1 - EPS)
        return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def apply_temperature(p: np.ndarray, temperature: float, task: str = "binary") -> np.ndarray:
    """Probabilities re-scaled by a fitted temperature (the ranking, hence the AUC, is unchanged)."""
    z = _logits(p, task) / temperature
    return softmax(z, axis=1) if task == "multiclass" else expit(z)


def _logits(p: np.ndarray, task: str) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) if task == "multiclass" else logit(p)


def calibration_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict:
    """Brier score, ECE and the reliability curve of one split (binary or one label)."""
    curve = reliability_curve(y, p, n_bins)
    return {"brier": brier_score(y, p), "ece": expected_calibration_error(y, p, n_bins),
            "reliability": {k: v.tolist() for k, v in curve.items()}}


def classwise_calibration(y: np.ndarray, prob: np.ndarray, names: list[str], n_bins: int = 10) -> dict:
    """Per class (label): Brier, ECE and reliability curve of p_k against "class k"; classwise ECE (their mean);
    for multiclass (1-D ``y``) also the top-label ECE (confidence max_k p_k against "argmax is right") and the
    multiclass Brier score (mean over cases of sum_k (p_k - y_k)^2)."""
    prob = np.asarray(prob, dtype=float)
    Y = indicator_matrix(y, prob.shape[1])
    per_class = {name: calibration_metrics(Y[:, k], prob[:, k], n_bins) for k, name in enumerate(names)}
    out = {"per_class": per_class, "classwise_ece": float(np.mean([m["ece"] for m in per_class.values()])),
           "n_bins": n_bins}
    if np.asarray(y).ndim == 1:
        correct = (prob.argmax(axis=1) == np.asarray(y).astype(int)).astype(int)
        out["top_label_ece"] = expected_calibration_error(correct, prob.max(axis=1), n_bins)
        out["brier_multiclass"] = float(((prob - Y) ** 2).sum(axis=1).mean())
    return json_safe(out)
