"""One study's probability from its slices' probabilities: the combination rules of augmented prediction."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from medfit.errors import DataError

RULES = ("mean_prob", "max", "mean_logit")


def combine_probabilities(probs: np.ndarray, rule: str = "mean_prob") -> float:
    """One study probability from its slices' probabilities: mean, max, or the sigmoid of the mean logit."""
    p = np.asarray(probs, dtype=float)
    if rule == "mean_prob":
        return float(p.mean())
    if rule == "max":
        return float(p.max())
    if rule == "mean_logit":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        return float(1 / (1 + np.exp(-np.mean(np.log(q / (1 - q))))))
    raise DataError(f"volume.combine {rule!r}: expected one of {', '.join(RULES)}")


def combine_class_probabilities(probs: np.ndarray, rule: str = "mean_prob", task: str = "multiclass") -> np.ndarray:
    """One study's (K,) probabilities from its slices' (S, K), per class: mean, max, or mean logit.

    multilabel: each label as combine_probabilities. multiclass: mean_prob is already a distribution; max is
    renormalised to sum 1; mean_logit is softmax of the mean log-probability (the renormalised geometric mean).
    """
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    if rule not in RULES:
        raise DataError(f"volume.combine {rule!r}: expected one of {', '.join(RULES)}")
    if task == "multilabel":
        return np.array([combine_probabilities(p[:, k], rule) for k in range(p.shape[1])])
    if rule == "mean_prob":
        return p.mean(axis=0)
    if rule == "max":
        return p.max(axis=0) / p.max(axis=0).sum()
    return softmax(np.log(np.clip(p, 1e-7, 1)).mean(axis=0))
