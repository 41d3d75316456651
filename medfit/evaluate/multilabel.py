"""Multilabel extras: the derived "any" label with its threshold chosen on validation, and label co-occurrence."""
from __future__ import annotations

import numpy as np

from medfit.errors import DataError
from medfit.run_folder import json_safe
from medfit.evaluate.metrics import auc, binary_metrics_without_auc, choose_threshold, confusion_counts
from medfit.evaluate.stats import delong_auc_ci, proportion_intervals

ANY_RULES = ("max", "noisy_or")


def any_label(Y: np.ndarray, P: np.ndarray, rule: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """(y_any, p_any): positive when any label is; its probability the max label probability, or 1 - prod(1 - p)."""
    Y, P = np.asarray(Y).astype(int), np.asarray(P, dtype=float)
    if rule not in ANY_RULES:
        raise DataError(f"any-label rule {rule!r}: expected one of {', '.join(ANY_RULES)}")
    return Y.max(axis=1), (P.max(axis=1) if rule == "max" else 1 - np.prod(1 - P, axis=1))


def any_label_metrics(y_val: np.ndarray, p_val: np.ndarray, y: np.ndarray, p: np.ndarray, method: str = "youden",
                      value: float = 0.5, level: float = 0.95) -> dict:
    """The "any" label on a split at a threshold chosen on validation (not a fixed 0.5): AUC with DeLong CI, counts,
    sensitivity/specificity/PPV/NPV/F1 and Wilson CIs. Takes row- or patient-level (y_any, p_any) arrays."""
    try:
        t = choose_threshold(np.asarray(y_val).astype(int), np.asarray(p_val, float), method, value)
    except DataError as exc:
        raise DataError(f"'any' label: {exc}") from None
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    counts = confusion_counts(y, p, t)
    out = {"threshold": {"method": method, "value": t, "chosen_on": "val"}, "n": len(y), "positives": int(y.sum()),
           "auc": auc(y, p), **counts, **binary_metrics_without_auc(y, p, t),
           "wilson_ci": proportion_intervals(counts, level)}
    if 0 < y.sum() < len(y):
        out["auc_delong_ci"] = list(delong_auc_ci(y, p, level)[1:])
    return json_safe(out)


def label_cooccurrence(Y: np.ndarray, names: list[str]) -> dict:
    """Counts of cases with both labels (diagonal: each label's count), the row-conditional percentage
    P(column label | row label), and how many labels each case carries."""
    Y = np.asarray(Y).astype(int)
    both = Y.T @ Y
    diag = np.diag(both)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = np.where(diag[:, None] > 0, 100.0 * both / diag[:, None], np.nan)
    per_case = np.bincount(Y.sum(axis=1), minlength=len(names) + 1)
    return json_safe({"label_names": names, "counts": both, "conditional_percent": conditional, "n": len(Y),
                      "labels_per_case": {str(k): int(v) for k, v in enumerate(per_case)}})
