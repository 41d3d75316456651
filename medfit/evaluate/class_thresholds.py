"""Per-class (per-label) one-vs-rest thresholds chosen on validation and carried to another split, the metrics
at them with Wilson CIs, and the rule that turns per-class thresholds into one predicted class."""
from __future__ import annotations

import numpy as np

from medfit.errors import DataError
from medfit.run_folder import json_safe
from medfit.evaluate.metrics import binary_metrics_without_auc, choose_threshold, confusion_counts
from medfit.evaluate.multiclass import indicator_matrix
from medfit.evaluate.stats import proportion_intervals, wilson_interval

RULE = "argmax_k p_k / t_k"


def class_thresholds(y_val: np.ndarray, prob_val: np.ndarray, names: list[str], method: str = "youden",
                     value: float = 0.5) -> dict[str, float]:
    """Each class's threshold on validation: choose_threshold on (class k vs the rest, p_k)."""
    prob_val = np.asarray(prob_val, dtype=float)
    Y = indicator_matrix(y_val, prob_val.shape[1])
    out = {}
    for k, name in enumerate(names):
        try:
            out[name] = choose_threshold(Y[:, k], prob_val[:, k], method, value)
        except DataError as exc:
            raise DataError(f"class {name!r}: {exc}") from None
    return out


def class_threshold_metrics(y: np.ndarray, prob: np.ndarray, thresholds: dict[str, float], level: float = 0.95) -> dict:
    """Per class at its threshold (p_k >= t_k called positive): counts, sensitivity/specificity/PPV/NPV/F1/accuracy
    and Wilson CIs of the proportions (F1 has none). ``thresholds`` maps class names, in column order, to t_k."""
    prob = np.asarray(prob, dtype=float)
    Y = indicator_matrix(y, prob.shape[1])
    out = {}
    for k, (name, t) in enumerate(thresholds.items()):
        counts = confusion_counts(Y[:, k], prob[:, k], t)
        out[name] = {"threshold": t, **counts, **binary_metrics_without_auc(Y[:, k], prob[:, k], t),
                     "wilson_ci": proportion_intervals(counts, level)}
    return json_safe(out)


def threshold_rule(prob: np.ndarray, thresholds) -> np.ndarray:
    """One class per case: argmax of p_k / t_k, the class that clears its own threshold by the largest factor.

    When exactly one class clears its threshold it is the one chosen; when none or several do, the largest ratio
    decides; with every t_k equal this is the plain argmax.
    """
    t = np.maximum(np.asarray(list(thresholds.values()) if isinstance(thresholds, dict) else thresholds, float), 1e-12)
    return np.argmax(np.asarray(prob, dtype=float) / t[None, :], axis=1)


def carried_class_thresholds(y_val: np.ndarray, prob_val: np.ndarray, y: np.ndarray, prob: np.ndarray,
                             names: list[str], method: str = "youden", value: float = 0.5, level: float = 0.95) -> dict:
    """Thresholds chosen on validation, applied to another split: per-class metrics and, for multiclass labels
    (1-D ``y``), the accuracy of the threshold rule with its Wilson CI (its predictions: ``threshold_rule``)."""
    thresholds = class_thresholds(y_val, prob_val, names, method, value)
    out = {"threshold": {"method": method, "value": value if method != "youden" else None, "chosen_on": "val",
                         "per_class": thresholds},
           "per_class": class_threshold_metrics(y, prob, thresholds, level)}
    if np.asarray(y).ndim == 1:
        pred = threshold_rule(prob, thresholds)
        hits = int((pred == np.asarray(y).astype(int)).sum())
        out["decision_rule"] = {"rule": RULE, "accuracy": hits / len(pred) if len(pred) else None,
                                "accuracy_ci": wilson_interval(hits, len(pred), level)}
    return json_safe(out)
