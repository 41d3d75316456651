"""Cohen's kappa of predicted against true class (unweighted, or linear/quadratic weights for ordinal labels) with a
stratified bootstrap CI."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from medfit.errors import ConfigError
from medfit.evaluate.jsonsafe import json_safe
from medfit.evaluate.metrics import stratified_bootstrap_indices

WEIGHTS = (None, "linear", "quadratic")


def kappa(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: str | None = None) -> float:
    """Cohen's kappa over classes 0..n_classes-1 (NaN when chance agreement is total, e.g. one class only)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        value = cohen_kappa_score(y, pred, labels=list(range(n_classes)), weights=weights)
    return float(value)


def kappa_ci(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: str | None = None, n_bootstrap: int = 1000,
             level: float = 0.95, seed: int = 0) -> dict:
    """Kappa and its percentile CI from resamples stratified by the true class; ``weights="quadratic"`` for ordinal
    classes (disagreements cost the squared distance of the class indices)."""
    if weights not in WEIGHTS:
        raise ConfigError(f"kappa weights {weights!r}: expected none, linear or quadratic")
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    point = kappa(y, pred, n_classes, weights)
    samples = [kappa(y[i], pred[i], n_classes, weights) for i in stratified_bootstrap_indices(y, n_bootstrap, seed)]
    alpha = (1 - level) / 2
    finite = np.array([s for s in samples if np.isfinite(s)])
    ci = [np.quantile(finite, alpha), np.quantile(finite, 1 - alpha)] if len(finite) else [None, None]
    return json_safe({"kappa": point, "ci": ci, "weights": weights or "none", "level": level,
                      "bootstrap": n_bootstrap, "n": len(y)})
