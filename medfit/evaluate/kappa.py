"""Cohen's kappa of predicted against true class (unweighted, or linear/quadratic weights for ordinal labels) with a
stratified bootstrap CI."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from medfit.errors import ConfigError
from medfit.run_folder import json_safe
from medfit.evaluate.metrics import stratified_bootstrap_indices

WEIGHTS = (None, "linear", "quadratic")


def kappa(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: str | None = None) -> float:
    """Cohen's kappa over classes 0..n_classes-1 (NaN when chance agreement is total, e.g. one class only)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        value = cohen_kappa_score(y, pred, labels=list(range(n_classes)), weights=weights)
    return float(value)


def kappa_from_confusion(cm: np.ndarray, weights: str | None = None) -> np.ndarray:
    """Kappa of confusion matrices (..., K, K): 1 - sum(W * observed) / sum(W * chance), W the disagreement weights."""
    # by hand (the formula of sklearn's cohen_kappa_score) so 1000 resampled matrices take one vectorised step
    k = cm.shape[-1]
    i, j = np.indices((k, k))
    w = {None: (i != j).astype(float), "linear": np.abs(i - j).astype(float), "quadratic": (i - j) ** 2.0}[weights]
    n = cm.sum(axis=(-2, -1))[..., None, None]
    chance = cm.sum(axis=-1)[..., :, None] * cm.sum(axis=-2)[..., None, :] / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - (w * cm).sum(axis=(-2, -1)) / (w * chance).sum(axis=(-2, -1))


def kappa_ci(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: str | None = None, n_bootstrap: int = 1000,
             level: float = 0.95, seed: int = 0) -> dict:
    """Kappa and its percentile CI from resamples stratified by the true class; ``weights="quadratic"`` for ordinal
    classes (disagreements cost the squared distance of the class indices)."""
    if weights not in WEIGHTS:
        raise ConfigError(f"kappa weights {weights!r}: expected none, linear or quadratic")
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    point = kappa(y, pred, n_classes, weights)
    cells = y * n_classes + pred
    resamples = stratified_bootstrap_indices(y, n_bootstrap, seed)
    cms = np.array([np.bincount(cells[i], minlength=n_classes ** 2) for i in resamples], dtype=float)
    samples = kappa_from_confusion(cms.reshape(-1, n_classes, n_classes), weights)
    finite = samples[np.isfinite(samples)]
    alpha = (1 - level) / 2
    ci = [np.quantile(finite, alpha), np.quantile(finite, 1 - alpha)] if len(finite) else [None, None]
    return json_safe({"kappa": point, "ci": ci, "weights": weights or "none", "level": level,
                      "bootstrap": n_bootstrap, "n": len(y)})
