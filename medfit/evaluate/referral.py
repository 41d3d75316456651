"""Uncertainty per case and referral: ensemble mean/spread, entropy, the risk-coverage curve, mean +- sd over seeds.

Referral: the most uncertain x % of cases go to a clinician; the model's accuracy and AUC on the cases it keeps show
what the referral buys. Per-case functions return arrays (for a predictions-table column); summaries return dicts.
Written here: MAPIE / crepes / puncc have no risk-coverage curve from precomputed probabilities and uncertainties.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from medfit.errors import ConfigError, DataError
from medfit.evaluate.conformal import as_class_matrix
from medfit.evaluate.metrics import auc
from medfit.evaluate.multiclass import ovr_auc

UNCERTAINTIES = ("entropy", "sd", "mutual_information")
EPS = 1e-12


def ensemble_probs(members: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and sample sd (ddof 1) over K members (or MC-dropout samples): (K, n) or (K, n, C) -> (n,) or (n, C)."""
    members = np.asarray(members, dtype=float)
    if members.ndim not in (2, 3) or len(members) < 2:
        raise DataError(f"an ensemble needs (K >= 2, n) or (K, n, C) member probabilities, got shape {members.shape}")
    return {"mean": members.mean(axis=0), "sd": members.std(axis=0, ddof=1)}


def predictive_entropy(prob: np.ndarray) -> np.ndarray:
    """Entropy of each case's predicted distribution, divided by log(C) so that it lies in [0, 1]."""
    q = as_class_matrix(prob)
    return -(q * np.log(np.clip(q, EPS, 1))).sum(axis=1) / math.log(q.shape[1])


def mutual_information(members: np.ndarray) -> np.ndarray:
    """Epistemic part of the entropy (BALD): H(mean of members) - mean of H(member), in units of log(C)."""
    members = np.asarray(members, dtype=float)
    mean_entropy = np.mean([predictive_entropy(m) for m in members], axis=0)
    return predictive_entropy(members.mean(axis=0)) - mean_entropy


def member_spread(members: np.ndarray) -> np.ndarray:
    """Per case: sd of P(positive) over members (binary) or the mean over classes of the per-class sd."""
    sd = ensemble_probs(members)["sd"]
    return sd if sd.ndim == 1 else sd.mean(axis=1)


def case_uncertainty(prob: np.ndarray | None = None, members: np.ndarray | None = None,
                     kind: str = "entropy") -> np.ndarray:
    """Uncertainty per case: entropy of ``prob`` (or of the members' mean), members' sd, or mutual information."""
    if kind not in UNCERTAINTIES:
        raise ConfigError(f"uncertainty {kind!r} is unknown; use one of {', '.join(UNCERTAINTIES)}")
    if kind == "entropy":
        if prob is None and members is None:
            raise DataError("entropy needs probabilities or ensemble members")
        return predictive_entropy(prob if prob is not None else np.mean(members, axis=0))
    if members is None:
        raise DataError(f"uncertainty {kind!r} needs ensemble members or MC-dropout samples (K, n[, C])")
    return member_spread(members) if kind == "sd" else mutual_information(members)


def _scores(y: np.ndarray, prob: np.ndarray, threshold: float) -> tuple[np.ndarray, callable]:
    """Correct-or-not per case, and the AUC function of the task."""
    if prob.ndim == 1:
        return (prob >= threshold).astype(int) == y, auc
    return prob.argmax(axis=1) == y, lambda yy, pp: ovr_auc(yy, pp)


def retained_metrics(y: np.ndarray, prob: np.ndarray, uncertainty: np.ndarray, rate: float,
                     threshold: float = 0.5) -> dict:
    """Accuracy and AUC of the cases kept after referring the rate * n most uncertain (half up; ties: earlier rows go)."""
    y, prob = np.asarray(y).astype(int), np.asarray(prob, dtype=float)
    order = np.argsort(-np.asarray(uncertainty, dtype=float), kind="stable")
    kept = np.sort(order[int(np.floor(rate * len(y) + 0.5)):])
    correct, auc_fn = _scores(y, prob, threshold)
    return {"referral_rate": float(rate), "referred": int(len(y) - len(kept)), "retained": int(len(kept)),
            "accuracy": float(correct[kept].mean()) if len(kept) else float("nan"),
            "auc": float(auc_fn(y[kept], prob[kept])) if len(kept) else float("nan")}


def risk_coverage(y: np.ndarray, prob: np.ndarray, uncertainty: np.ndarray, threshold: float = 0.5,
                  report_rates: tuple[float, ...] = (0.05, 0.10, 0.20), max_rate: float = 0.5, step: float = 0.01) -> dict:
    """The risk-coverage curve: accuracy and AUC of the retained cases as the most uncertain are referred.

    ``prob`` is P(positive) (binary, accuracy at ``threshold``) or (n, C) (argmax accuracy, macro OvR AUC).
    ``aurc`` is the area under the risk (1 - accuracy) vs coverage curve over all coverages (lower is better);
    ``aurc_random`` is the same for a referral that ignores uncertainty (the overall error rate).
    """
    y, prob, u = np.asarray(y).astype(int), np.asarray(prob, dtype=float), np.asarray(uncertainty, dtype=float)
    if not (len(y) == len(prob) == len(u)) or len(y) == 0:
        raise DataError(f"risk-coverage needs one label, prediction and uncertainty per case ({len(y)}, {len(prob)}, "
                        f"{len(u)})")
    if not all(0 <= r < 1 for r in report_rates) or not 0 < max_rate < 1:
        raise ConfigError(f"referral rates must lie in [0, 1), got {list(report_rates)} and max {max_rate}")
    curve = [retained_metrics(y, prob, u, r, threshold) for r in np.round(np.arange(0, max_rate + 1e-9, step), 6)]
    correct, _ = _scores(y, prob, threshold)
    errors = ~correct[np.argsort(u, kind="stable")]  # most certain first
    risk = np.cumsum(errors) / np.arange(1, len(y) + 1)
    at = [retained_metrics(y, prob, u, r, threshold) for r in report_rates]
    return {"n": int(len(y)), "at": at,
            "curve": {k: [row[k] for row in curve] for k in ("referral_rate", "accuracy", "auc")},
            "aurc": float(risk.mean()), "aurc_random": float(errors.mean())}


def seed_summary(metric_dicts: list[dict]) -> dict:
    """Mean and sample sd (ddof 1) of every numeric leaf over runs (e.g. seeds); nested dicts keep their shape.

    A leaf becomes {"mean", "sd", "n"} over the runs where it is a finite number; lists (CIs) and text are skipped.
    """
    if not metric_dicts:
        raise DataError("seed_summary needs at least one metrics dict")
    keys = list(dict.fromkeys(k for d in metric_dicts for k in d))
    out = {}
    for key in keys:
        values = [d[key] for d in metric_dicts if key in d]
        if all(isinstance(v, dict) for v in values):
            out[key] = seed_summary(values)
            continue
        numbers = [float(v) for v in values if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)]
        if numbers:
            out[key] = {"mean": float(np.mean(numbers)), "sd": float(np.std(numbers, ddof=1)) if len(numbers) > 1
                        else float("nan"), "n": len(numbers)}
    return out


def format_mean_sd(summary: dict, digits: int = 3) -> str:
    """'0.912 +- 0.011 (n = 5)' from one seed_summary leaf."""
    sd = summary["sd"]
    return f"{summary['mean']:.{digits}f} +- {'n/a' if math.isnan(sd) else f'{sd:.{digits}f}'} (n = {summary['n']})"
