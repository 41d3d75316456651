"""One-vs-rest AUC of every class (or label) with stratified bootstrap and DeLong CIs, and macro/weighted AUC CIs."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata

from medfit.run_folder import json_safe
from medfit.evaluate.metrics import stratified_bootstrap_indices
from medfit.evaluate.multiclass import indicator_matrix, label_strata
from medfit.evaluate.stats import delong_auc_ci


def column_aucs(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """AUC of each column of P against the 0/1 column of Y (Mann-Whitney from midranks; NaN for a one-class column)."""
    Y, P = np.asarray(Y, dtype=float), np.asarray(P, dtype=float)
    n1 = Y.sum(axis=0)
    n0 = len(Y) - n1
    ranks = rankdata(P, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((ranks * Y).sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), out, np.nan)


def average_auc(aucs: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """(macro, weighted) mean of per-class AUCs over the classes with an AUC (weighted by positives)."""
    ok = ~np.isnan(aucs)
    if not ok.any():
        return float("nan"), float("nan")
    w = np.asarray(positives, dtype=float)[ok]
    return float(aucs[ok].mean()), float((aucs[ok] * w).sum() / w.sum())


def bootstrap_aucs(Y: np.ndarray, P: np.ndarray, strata: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, K + 2) per-class, macro and weighted AUC of ``n`` resamples stratified by ``strata``."""
    rows = []
    for idx in stratified_bootstrap_indices(strata, n, seed):
        aucs = column_aucs(Y[idx], P[idx])
        rows.append([*aucs, *average_auc(aucs, Y[idx].sum(axis=0))])
    return np.array(rows, dtype=float)


def _percentile_ci(samples: np.ndarray, level: float) -> np.ndarray:
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # a class with one side missing in every resample has an all-NaN column
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(samples, alpha, axis=0) if len(samples) else np.full(samples.shape[1:], np.nan)
        hi = np.nanquantile(samples, 1 - alpha, axis=0) if len(samples) else lo
    return np.stack([lo, hi], axis=-1)


def ovr_auc_table(y: np.ndarray, prob: np.ndarray, names: list[str], n_bootstrap: int = 1000, level: float = 0.95,
                  seed: int = 0) -> dict:
    """Per class: AUC, stratified-bootstrap CI and DeLong CI; macro and weighted AUC with bootstrap CIs.

    ``y`` is (N,) class indices (multiclass) or an (N, K) 0/1 matrix (multilabel). Resamples are joint (one per
    bootstrap draw for all classes) and stratified by class, or by label pattern with patterns seen once pooled, so
    every class keeps its positive count; the percentile CI of a class skips resamples where it has one class only.
    """
    prob = np.asarray(prob, dtype=float)
    Y = indicator_matrix(y, prob.shape[1])
    aucs = column_aucs(Y, prob)
    macro, weighted = average_auc(aucs, Y.sum(axis=0))
    ci = np.full((len(names) + 2, 2), np.nan)
    if n_bootstrap and np.isfinite(macro):
        ci = _percentile_ci(bootstrap_aucs(Y, prob, label_strata(y), n_bootstrap, seed), level)
    per_class = {}
    for k, name in enumerate(names):
        pos = int(Y[:, k].sum())
        entry = {"auc": aucs[k], "auc_ci": ci[k], "positives": pos, "negatives": int(len(Y) - pos)}
        if 0 < pos < len(Y):
            entry["auc_delong_ci"] = list(delong_auc_ci(Y[:, k], prob[:, k], level)[1:])
        per_class[name] = entry
    return json_safe({"per_class": per_class, "auc_macro": macro, "auc_macro_ci": ci[-2], "auc_weighted": weighted,
                      "auc_weighted_ci": ci[-1], "n": len(Y), "level": level, "bootstrap": n_bootstrap})
