"""Conformal prediction sets of a run: calibrated on its validation rows, evaluated on each evaluation split (and per
site), with a plain statement when the test coverage falls short; prediction sets for new cases (medfit predict)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.config import EvaluateConfig
from medfit.errors import DataError
from medfit.evaluate.conformal import conformal_evaluation, conformal_sets, format_sets
from medfit.task import Task

TOLERANCE = 0.03  # coverage within this many points of 1 - alpha counts as "as requested"


def _probs(part: pd.DataFrame, task: Task) -> np.ndarray:
    """P(positive) for binary (conformal.as_class_matrix makes the two columns), (n, K) otherwise."""
    return part["prob"].to_numpy(dtype=float) if task.is_binary else task.probability_matrix(part)


def _class_names(task: Task) -> list[str]:
    return list(task.class_names) or [str(k) for k in range(max(task.num_outputs, 2))]


def _sites(part: pd.DataFrame):
    return part["site"].astype(str).to_numpy() if "site" in part and part["site"].nunique() > 1 else None


def coverage_note(res: dict) -> str:
    """One sentence: coverage as requested, above it (conservative), or short of it with the numbers and why."""
    cov, target, split = res["coverage"], res["target_coverage"], res.get("split", "test")
    gap = 100 * (cov - target)
    head = (f"{split} coverage {cov:.3f} ({res['n']} cases) against the requested {target:.3f} "
            f"(alpha {res['alpha']}, calibrated on {res['calibration_n']} validation cases)")
    if gap < -100 * TOLERANCE:
        return (f"{head}: short by {-gap:.1f} points. Conformal coverage holds only when {split} cases are "
                f"exchangeable with the validation cases; {split} differs from validation (a shift in the cases or "
                "in how they were acquired), so these sets cover less often than requested there.")
    if gap > 100 * TOLERANCE:
        return f"{head}: {gap:.1f} points above the requested level (conservative sets; uninformative when large)."
    return f"{head}: within {100 * TOLERANCE:.0f} points of the requested level."


def evaluate_split(val: pd.DataFrame, part: pd.DataFrame, task: Task, e: EvaluateConfig) -> dict:
    """Sets for one split calibrated on validation, summarised overall and per site."""
    by_site = e.conformal_mondrian == "site"
    res = conformal_evaluation(_probs(val, task), task.labels(val), _probs(part, task), task.labels(part),
                               e.conformal_alpha, e.conformal_method, e.conformal_mondrian == "class",
                               groups=_sites(part) if not by_site else part["site"].astype(str).to_numpy(),
                               groups_cal=val["site"].astype(str).to_numpy() if by_site else None,
                               class_names=_class_names(task))
    return res


def run_conformal(pred: pd.DataFrame, task: Task, e: EvaluateConfig, headline: str) -> dict | None:
    """The headline split's sets (with ``split`` and ``note``) and, under ``other_splits``, every other evaluation
    split's; None when conformal sets are off or there is no validation split to calibrate on."""
    val = pred[pred["split"] == "val"]
    if not e.conformal_alpha or val.empty or task.is_multilabel:
        return None
    results = {}
    for split in [s for s in pred["split"].unique() if s not in ("train", "val")]:
        try:
            results[split] = {**evaluate_split(val, pred[pred["split"] == split], task, e), "split": split}
        except DataError as exc:  # e.g. Mondrian by site with sites validation never saw (external sites)
            results[split] = {"split": split, "skipped": str(exc)}
        if "coverage" in results[split]:
            results[split]["note"] = coverage_note(results[split])
    if headline not in results:
        return None
    return {**results.pop(headline), "other_splits": results}


def prediction_sets(val: pd.DataFrame, new: pd.DataFrame, task: Task, e: EvaluateConfig) -> list[str]:
    """The conformal set of each new row, e.g. '{NORMAL, PNEUMONIA}', calibrated on the run's validation rows."""
    by_site = e.conformal_mondrian == "site"
    sets = conformal_sets(_probs(val, task), task.labels(val), _probs(new, task), e.conformal_alpha,
                          e.conformal_method, e.conformal_mondrian == "class",
                          val["site"].astype(str).to_numpy() if by_site else None,
                          new["site"].astype(str).to_numpy() if by_site else None)
    return format_sets(sets, _class_names(task))
