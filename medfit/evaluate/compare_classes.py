"""Paired comparison of two runs on the same cases for multiclass and multilabel: per-class DeLong tests with Holm
correction, and a paired bootstrap of the macro AUC difference."""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from medfit.errors import DataError
from medfit.run_folder import json_safe
from medfit.evaluate.metrics import stratified_bootstrap_indices
from medfit.evaluate.multiclass import indicator_matrix, label_strata
from medfit.evaluate.ovr_auc import average_auc, column_aucs
from medfit.evaluate.stats import delong_test


def holm_adjust(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries left out and kept NaN)."""
    # by hand: scipy has only Benjamini-Hochberg/Yekutieli (false_discovery_control); statsmodels is no dependency
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def paired_class_delong(y: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, names: list[str],
                        level: float = 0.95) -> dict:
    """Per class (label): the paired DeLong test of AUC(a) - AUC(b) on class k vs the rest, with Holm-adjusted p
    over the classes tested (a class with one side missing is reported untested)."""
    Y, prob_a, prob_b = _paired(y, prob_a, prob_b)
    results, p = {}, []
    for k, name in enumerate(names):
        if 0 < Y[:, k].sum() < len(Y):
            results[name] = delong_test(Y[:, k], prob_a[:, k], prob_b[:, k], level).to_dict()
            p.append(results[name]["p_value"])
        else:
            results[name] = None
            p.append(np.nan)
    for name, adj in zip(names, holm_adjust(p)):
        if results[name] is not None:
            results[name]["p_holm"] = float(adj)
    return json_safe(results)


def paired_macro_auc_bootstrap(y: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, n_bootstrap: int = 1000,
                               level: float = 0.95, seed: int = 0) -> dict:
    """Macro AUC of a and b, their difference with a percentile CI from joint stratified resamples of the cases,
    and the two-sided p of z = difference / SD(resampled differences) (the bootstrap test of pROC's roc.test)."""
    Y, prob_a, prob_b = _paired(y, prob_a, prob_b)
    macro_a, macro_b = _macro(Y, prob_a), _macro(Y, prob_b)
    diffs = [_macro(Y[i], prob_a[i]) - _macro(Y[i], prob_b[i])
             for i in stratified_bootstrap_indices(label_strata(y), n_bootstrap, seed)]
    diffs = np.array(diffs, dtype=float)
    diffs = diffs[np.isfinite(diffs)]
    diff, sd = macro_a - macro_b, float(diffs.std(ddof=1)) if len(diffs) > 1 else float("nan")
    z = diff / sd if sd > 0 else (0.0 if diff == 0 else np.sign(diff) * np.inf)
    alpha = (1 - level) / 2
    ci = np.quantile(diffs, [alpha, 1 - alpha]) if len(diffs) else [np.nan, np.nan]
    return json_safe({"auc_macro_a": macro_a, "auc_macro_b": macro_b, "difference": diff, "ci": ci, "se": sd, "z": z,
                      "p_value": float(2 * norm.sf(abs(z))) if np.isfinite(sd) else None, "level": level,
                      "bootstrap": n_bootstrap, "n": len(Y)})


def compare_class_aucs(y: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, names: list[str],
                       n_bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Both comparisons of two runs' probabilities on the same cases: per-class DeLong (Holm) and macro bootstrap."""
    return {"per_class": paired_class_delong(y, prob_a, prob_b, names, level),
            "macro": paired_macro_auc_bootstrap(y, prob_a, prob_b, n_bootstrap, level, seed)}


def _macro(Y: np.ndarray, prob: np.ndarray) -> float:
    return average_auc(column_aucs(Y, prob), Y.sum(axis=0))[0]


def _paired(y, prob_a, prob_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prob_a, prob_b = np.asarray(prob_a, dtype=float), np.asarray(prob_b, dtype=float)
    if prob_a.shape != prob_b.shape or len(prob_a) != len(y):
        raise DataError(f"paired comparison needs both runs' probabilities on the same cases and classes "
                        f"({len(y)} labels; shapes {prob_a.shape} and {prob_b.shape})")
    return indicator_matrix(y, prob_a.shape[1]), prob_a, prob_b
