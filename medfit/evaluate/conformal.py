"""Split-conformal prediction sets calibrated on validation probabilities: LAC, APS and RAPS scores, Mondrian options.

A set holds every label whose conformal p-value exceeds alpha, so that P(true label in set) >= 1 - alpha when the
calibration and new cases are exchangeable. crepes computes the p-values (standard or Mondrian); the scores are
written here because crepes ships only the hinge (= LAC) and margin scores. Everything is deterministic (no
randomised tie-breaking) unless ``randomized=True`` with a seed (Romano et al.'s APS with u ~ U(0, 1) per case:
smaller APS/RAPS sets; the deterministic APS/RAPS sets of a confident binary model are often both labels).
"""
from __future__ import annotations

import math

import numpy as np
from crepes import ConformalClassifier

from medfit.errors import ConfigError, DataError

METHODS = ("lac", "aps", "raps")


def as_class_matrix(prob: np.ndarray) -> np.ndarray:
    """(n, K) class probabilities; a binary vector p of P(class 1) becomes the columns [1 - p, p]."""
    prob = np.asarray(prob, dtype=float)
    if prob.ndim == 1:
        return np.column_stack([1 - prob, prob])
    if prob.ndim != 2 or prob.shape[1] < 2:
        raise DataError(f"conformal sets need (n,) binary or (n, K >= 2) class probabilities, got shape {prob.shape}")
    return prob


def nonconformity(prob: np.ndarray, method: str = "lac", lam: float = 0.01, k_reg: int = 1,
                  u: np.ndarray | None = None) -> np.ndarray:
    """(n, K) score of every candidate label; higher = stranger.

    lac: 1 - p_y. aps: probability of the other labels at least as probable as y, plus u * p_y (u = 1: the
    deterministic score; u ~ U(0, 1) per case: Romano et al.'s randomised APS). raps: aps plus
    lam * max(0, rank(y) - k_reg), rank 1 = the most probable label (Angelopoulos et al. 2021).
    """
    prob = as_class_matrix(prob)
    if method == "lac":
        return 1 - prob
    u = np.ones((len(prob), 1)) if u is None else np.asarray(u, dtype=float).reshape(-1, 1)
    at_least = prob[:, None, :] >= prob[:, :, None]  # [i, y, j]: p_j >= p_y
    mass = (at_least * prob[:, None, :]).sum(axis=2) - (1 - u) * prob
    if method == "aps":
        return mass
    return mass + lam * np.maximum(at_least.sum(axis=2) - k_reg, 0)


def conformal_threshold(scores: np.ndarray, alpha: float) -> float:
    """The split-conformal quantile: the ceil((n + 1)(1 - alpha))-th smallest score (inf when n is too small)."""
    k = math.ceil((len(scores) + 1) * (1 - alpha) - 1e-9)
    return float(np.sort(scores)[k - 1]) if 1 <= k <= len(scores) else float("inf")


def _check(alpha: float, method: str, prob_cal: np.ndarray, y_cal: np.ndarray) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"conformal alpha must lie in (0, 1), got {alpha}")
    if method not in METHODS:
        raise ConfigError(f"conformal method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if len(prob_cal) != len(y_cal) or len(y_cal) == 0:
        raise DataError(f"conformal calibration needs one label per probability row ({len(y_cal)} labels, "
                        f"{len(prob_cal)} rows)")
    if y_cal.min() < 0 or y_cal.max() >= prob_cal.shape[1]:
        raise DataError(f"conformal calibration labels must be class indices 0..{prob_cal.shape[1] - 1}")


def _bins(bins_cal, bins_test, n_cal: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    if (bins_cal is None) != (bins_test is None):
        raise DataError("Mondrian conformal sets need groups for both the calibration and the new cases")
    if bins_cal is None:
        return np.zeros(n_cal, dtype=int).astype(str), np.zeros(n_test, dtype=int).astype(str)
    bins_cal, bins_test = np.asarray(bins_cal).astype(str), np.asarray(bins_test).astype(str)
    missing = sorted(str(b) for b in set(bins_test) - set(bins_cal))
    if missing:
        raise DataError(f"conformal groups {', '.join(missing)} have no calibration (validation) cases; calibrate "
                        "without grouping or add validation cases from them")
    return bins_cal, bins_test


def conformal_p_values(prob_cal: np.ndarray, y_cal: np.ndarray, prob: np.ndarray, method: str = "lac",
                       class_conditional: bool = False, bins_cal=None, bins_test=None, lam: float = 0.01,
                       k_reg: int = 1, randomized: bool = False, seed: int = 0) -> np.ndarray:
    """(n, K) non-smoothed conformal p-values of every label of the new cases (crepes' ConformalClassifier)."""
    prob_cal, prob = as_class_matrix(prob_cal), as_class_matrix(prob)
    y_cal = np.asarray(y_cal).astype(int)
    rng = np.random.default_rng(seed)
    u_cal, u_new = (rng.uniform(size=len(prob_cal)), rng.uniform(size=len(prob))) if randomized else (None, None)
    cal_scores = nonconformity(prob_cal, method, lam, k_reg, u_cal)[np.arange(len(y_cal)), y_cal]
    new_scores = nonconformity(prob, method, lam, k_reg, u_new)
    bins_cal, bins_test = _bins(bins_cal, bins_test, len(y_cal), len(prob))
    p_values = np.zeros(prob.shape)
    for c in range(prob.shape[1]):
        keep = y_cal == c if class_conditional else np.ones(len(y_cal), bool)
        if class_conditional and not keep.any():
            raise DataError(f"class-conditional conformal sets need validation cases of every class; class {c} has none")
        cc = ConformalClassifier().fit(cal_scores[keep], bins=bins_cal[keep])
        p_values[:, c] = cc.predict_p(new_scores[:, c], bins=bins_test, smoothing=False)
    return p_values


def conformal_sets(prob_cal: np.ndarray, y_cal: np.ndarray, prob: np.ndarray, alpha: float = 0.1, method: str = "lac",
                   class_conditional: bool = False, bins_cal=None, bins_test=None, lam: float = 0.01,
                   k_reg: int = 1, randomized: bool = False, seed: int = 0) -> np.ndarray:
    """(n, K) boolean prediction sets at error rate ``alpha``: labels whose conformal p-value exceeds alpha.

    ``class_conditional`` calibrates each label on the validation cases of that class (Mondrian by class: coverage
    holds within every class); ``bins_cal``/``bins_test`` (e.g. site) calibrate within each group.
    """
    y_cal = np.asarray(y_cal).astype(int)
    _check(alpha, method, as_class_matrix(prob_cal), y_cal)
    p = conformal_p_values(prob_cal, y_cal, prob, method, class_conditional, bins_cal, bins_test, lam, k_reg,
                           randomized, seed)
    return p > alpha + 1e-12


def set_summary(sets: np.ndarray, y: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Coverage, mean set size and the shares of empty, single-label and uncertain (size > 1) sets."""
    sets, y = np.asarray(sets, bool), np.asarray(y).astype(int)
    size = sets.sum(axis=1)
    covered = sets[np.arange(len(y)), y]
    names = class_names or [str(k) for k in range(sets.shape[1])]
    per_class = {names[k]: {"n": int((y == k).sum()), "coverage": _mean(covered[y == k])} for k in range(sets.shape[1])}
    return {"n": int(len(y)), "coverage": _mean(covered), "mean_set_size": _mean(size),
            "uncertain_share": _mean(size > 1), "empty_share": _mean(size == 0), "singleton_share": _mean(size == 1),
            "per_class": per_class}


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def conformal_evaluation(prob_cal: np.ndarray, y_cal: np.ndarray, prob: np.ndarray, y: np.ndarray, alpha: float = 0.1,
                         method: str = "lac", class_conditional: bool = False, groups=None, groups_cal=None,
                         class_names: list[str] | None = None, lam: float = 0.01, k_reg: int = 1,
                         randomized: bool = False, seed: int = 0) -> dict:
    """Sets for an evaluation split calibrated on validation, summarised overall and per group (e.g. site).

    ``groups`` only splits the summary; pass ``groups_cal`` as well to calibrate within each group (Mondrian).
    """
    bins_test = groups if groups_cal is not None else None
    sets = conformal_sets(prob_cal, y_cal, prob, alpha, method, class_conditional, groups_cal, bins_test, lam, k_reg,
                          randomized, seed)
    out = {"alpha": alpha, "target_coverage": 1 - alpha, "method": method, "randomized": bool(randomized),
           "mondrian": [m for m, on in (("class", class_conditional), ("group", groups_cal is not None)) if on],
           "calibration_n": int(len(y_cal)), **set_summary(sets, y, class_names)}
    if method == "raps":
        out.update({"lam": lam, "k_reg": k_reg})
    if randomized:
        out["seed"] = seed
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        out["per_group"] = {g: set_summary(sets[groups == g], np.asarray(y)[groups == g], class_names)
                            for g in sorted(set(groups.tolist()))}
    out["warnings"] = small_calibration_warnings(y_cal, alpha, class_conditional, groups_cal, class_names)
    return out


def small_calibration_warnings(y_cal: np.ndarray, alpha: float, class_conditional: bool = False, groups_cal=None,
                               class_names: list[str] | None = None) -> list[str]:
    """A line per calibration bin with fewer than 1/alpha - 1 cases: its sets hold every label (uninformative)."""
    y_cal = np.asarray(y_cal).astype(int)
    keys = [np.asarray(groups_cal).astype(str)] if groups_cal is not None else []
    if class_conditional:
        names = class_names or [str(k) for k in range(y_cal.max() + 1)]
        keys.append(np.array([f"class {names[k]}" for k in y_cal]))
    bins = np.array([" / ".join(parts) for parts in zip(*keys)]) if keys else np.full(len(y_cal), "all")
    need = math.ceil(1 / alpha - 1 - 1e-9)
    bin_names, counts = (a.tolist() for a in np.unique(bins, return_counts=True))
    return [f"conformal calibration bin '{b}' has {n} validation cases (< {need} for alpha {alpha}): its sets hold "
            "every label" for b, n in zip(bin_names, counts) if n < need]


def format_sets(sets: np.ndarray, class_names: list[str]) -> list[str]:
    """One string per case, e.g. '{NORMAL, PNEUMONIA}' (for a predictions-table column)."""
    return ["{" + ", ".join(class_names[k] for k in np.flatnonzero(row)) + "}" for row in np.asarray(sets, bool)]
