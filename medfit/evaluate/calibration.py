"""Calibration: Brier score, ECE, reliability curve, logistic recalibration slope/intercept, temperature scaling fitted
on validation, and the classwise (per class or label) version for multiclass and multilabel."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.metrics import brier_score_loss
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from medfit.run_folder import json_safe
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


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray, level: float = 0.95) -> dict:
    """Logistic recalibration: slope = coefficient of logit(p); intercept = calibration-in-the-large (logit(p) as offset).

    Ideal: slope 1 (below 1: predictions too extreme), intercept 0 (above 0: risks underestimated on average).
    Wald CIs from the GLM fit; probabilities are clipped to [1e-7, 1 - 1e-7] before the logit.
    """
    y, z = np.asarray(y, dtype=float), _logits(p, "binary")
    out = {"n": int(len(y)), "slope": float("nan"), "slope_ci": [float("nan")] * 2,
           "intercept": float("nan"), "intercept_ci": [float("nan")] * 2}
    if len(y) < 2 or y.min() == y.max():
        return out
    slope_fit = _binomial_glm(y, np.column_stack([np.ones(len(z)), z])) if np.ptp(z) > 0 else None
    cil_fit = _binomial_glm(y, np.ones((len(y), 1)), offset=z)
    if slope_fit is not None:
        out["slope"], out["slope_ci"] = float(slope_fit.params[1]), [float(v) for v in slope_fit.conf_int(1 - level)[1]]
    if cil_fit is not None:
        out["intercept"], out["intercept_ci"] = float(cil_fit.params[0]), [float(v) for v in cil_fit.conf_int(1 - level)[0]]
    return out


def _binomial_glm(y: np.ndarray, X: np.ndarray, offset: np.ndarray | None = None):
    """Maximum-likelihood logistic GLM, or None when it does not converge (e.g. perfect separation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            fit = GLM(y, X, family=Binomial(), offset=offset).fit()
        except (PerfectSeparationWarning, PerfectSeparationError, np.linalg.LinAlgError):
            return None
    ok = fit.converged and np.all(np.isfinite(fit.params)) and np.all(np.isfinite(fit.bse))
    return fit if ok else None


def recalibration_summary(y_val: np.ndarray, p_val: np.ndarray, y: np.ndarray, p: np.ndarray, level: float = 0.95) -> dict:
    """Slope and intercept on an evaluation split before and after temperature scaling fitted on validation."""
    t = fit_temperature(y_val, p_val)
    return {"temperature": t, "fitted_on": "val", "before": calibration_slope_intercept(y, p, level),
            "after_temperature": calibration_slope_intercept(y, apply_temperature(p, t), level)}


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
