"""Sample-size adequacy: the AUC CI half-width a test set affords, the n for a target width, learning-curve flattening.

Hanley & McNeil (1982) variance of an AUC A from n1 positives and n0 negatives:
    SE^2 = [A(1 - A) + (n1 - 1)(Q1 - A^2) + (n0 - 1)(Q2 - A^2)] / (n1 n0),  Q1 = A / (2 - A),  Q2 = 2A^2 / (1 + A)
Written here: pmvalsampsize sizes a whole validation study (it simulates the linear predictor, Newcombe's variance)
and statsmodels' power tools have no AUC; neither gives the Hanley-McNeil half-width of a given test set.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from medfit.errors import ConfigError, DataError


def hanley_mcneil_se(auc: float, positives: float, negatives: float) -> float:
    """Standard error of an AUC under Hanley & McNeil's exponential approximation."""
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def _check(prevalence: float, auc: float, level: float) -> None:
    if not 0 < prevalence < 1:
        raise ConfigError(f"prevalence must lie strictly between 0 and 1, got {prevalence}")
    if not 0.5 <= auc < 1:
        raise ConfigError(f"the anticipated AUC must lie in [0.5, 1), got {auc}")
    if not 0 < level < 1:
        raise ConfigError(f"the CI level must lie in (0, 1), got {level}")


def auc_ci_halfwidth(n: int, prevalence: float, auc: float = 0.8, level: float = 0.95) -> dict:
    """The CI half-width z * SE of an AUC from n cases with the given prevalence (positives = n * prevalence)."""
    _check(prevalence, auc, level)
    pos, neg = n * prevalence, n * (1 - prevalence)
    if pos < 1 or neg < 1:
        raise DataError(f"{n} cases at prevalence {prevalence} hold fewer than one case of a class; an AUC needs both")
    se = hanley_mcneil_se(auc, pos, neg)
    return {"n": int(n), "prevalence": float(prevalence), "positives": float(pos), "negatives": float(neg),
            "auc": float(auc), "level": level, "se": se, "halfwidth": float(norm.ppf(0.5 + level / 2) * se),
            "method": "Hanley & McNeil 1982"}


def n_for_auc_halfwidth(halfwidth: float, prevalence: float, auc: float = 0.8, level: float = 0.95) -> dict:
    """The smallest n whose AUC CI half-width is at most ``halfwidth`` (same formula, searched over whole cases)."""
    _check(prevalence, auc, level)
    if not 0 < halfwidth < 0.5:
        raise ConfigError(f"the target AUC CI half-width must lie in (0, 0.5), got {halfwidth}")
    lo = math.ceil(max(1 / prevalence, 1 / (1 - prevalence)))  # at least one case of each class
    width = lambda n: auc_ci_halfwidth(n, prevalence, auc, level)["halfwidth"]  # noqa: E731
    hi = lo
    while width(hi) > halfwidth:
        hi *= 2
    while lo < hi:  # the half-width falls as n grows: bisect for the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if width(mid) > halfwidth else (lo, mid)
    return {**auc_ci_halfwidth(lo, prevalence, auc, level), "target_halfwidth": float(halfwidth)}


LEARNING_CURVE_RULE = ("flattened when the last step gains less than {g} AUC per doubling of training patients and the "
                       "last two CIs overlap; needs at least 3 points")


def learning_curve_summary(points: list[dict], min_gain: float = 0.01) -> dict:
    """Has a learning curve (AUC vs training patients, with CIs) flattened? See LEARNING_CURVE_RULE.

    ``points``: [{"patients": int, "auc": float, "ci": [lo, hi]}, ...] in any order. The gain per doubling is
    (AUC_last - AUC_previous) / log2(patients_last / patients_previous): what another doubling would buy if the
    curve went on as its last step did.
    """
    pts = sorted(points, key=lambda q: q["patients"])
    if any(q["patients"] <= 0 for q in pts) or len({q["patients"] for q in pts}) != len(pts):
        raise DataError("learning-curve points need distinct positive training-patient counts")
    out = {"points": len(pts), "rule": LEARNING_CURVE_RULE.format(g=min_gain), "min_gain": min_gain,
           "flattened": None, "gain_per_doubling": None, "ci_overlap": None}
    if len(pts) < 2:
        return {**out, "message": "one point cannot show a trend"}
    prev, last = pts[-2], pts[-1]
    gain = (last["auc"] - prev["auc"]) / math.log2(last["patients"] / prev["patients"])
    overlap = bool(last["ci"][0] <= prev["ci"][1] and prev["ci"][0] <= last["ci"][1])
    out.update({"gain_per_doubling": float(gain), "ci_overlap": overlap})
    if len(pts) < 3:
        return {**out, "message": "two points: too few to call the curve flat"}
    out["flattened"] = bool(gain < min_gain and overlap)
    out["message"] = (f"flattened: {gain:+.3f} AUC per doubling from {prev['patients']} to {last['patients']} patients"
                      if out["flattened"] else
                      f"still rising: {gain:+.3f} AUC per doubling from {prev['patients']} to {last['patients']} patients"
                      f"{'' if overlap else ' (CIs apart)'}; more patients are likely to help")
    return out


def auc_ci_halfwidth_table(n: int, prevalence: float, aucs=(0.7, 0.8, 0.9), level: float = 0.95) -> list[dict]:
    """Half-widths at a few anticipated AUCs (for a report line: what this test set can resolve)."""
    return [auc_ci_halfwidth(n, prevalence, a, level) for a in np.atleast_1d(aucs)]
