"""Clinical utility: decision curve analysis (net benefit of the model vs treat-all and treat-none), with dcurves.

At a threshold probability pt (the risk at which a clinician would act), NB = TP/n - FP/n * pt / (1 - pt): true
positives found, minus false positives weighted by the odds of pt. Treat-all has NB = prevalence - (1 - prevalence) *
pt / (1 - pt); treat-none has NB = 0. The model is useful where its NB is above both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.errors import ConfigError, DataError


def net_benefit(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    """NB = TP/n - FP/n * pt/(1 - pt), a case called positive when p >= pt (the formula dcurves implements)."""
    y, called = np.asarray(y).astype(int), np.asarray(p, dtype=float) >= threshold
    n = len(y)
    return float((called & (y == 1)).sum() / n - (called & (y == 0)).sum() / n * threshold / (1 - threshold))


def threshold_grid(start: float = 0.01, stop: float = 0.99, step: float = 0.01) -> np.ndarray:
    """Threshold probabilities start, start + step, ..., stop (inclusive), rounded to 6 decimals."""
    grid = np.round(np.arange(start, stop + step / 2, step), 6)
    if len(grid) == 0 or grid.min() <= 0 or grid.max() >= 1:
        raise ConfigError(f"decision-curve thresholds must lie strictly between 0 and 1 (got {start}..{stop} step {step})")
    return grid


def decision_curve(y: np.ndarray, p: np.ndarray, thresholds=None, start: float = 0.01, stop: float = 0.99,
                   step: float = 0.01) -> dict:
    """Net benefit of the model, treat-all and treat-none over the thresholds; where the model beats both."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if len(y) != len(p) or len(y) == 0 or not set(np.unique(y)) <= {0, 1}:
        raise DataError(f"a decision curve needs 0/1 labels and one probability per case ({len(y)} labels, "
                        f"{len(p)} probabilities)")
    grid = threshold_grid(start, stop, step) if thresholds is None else np.asarray(thresholds, dtype=float)
    if grid.min() <= 0 or grid.max() >= 1:
        raise ConfigError(f"decision-curve thresholds must lie strictly between 0 and 1 (got {grid.min()}..{grid.max()})")
    from dcurves import dca  # imported here: dcurves loads lifelines and matplotlib.pyplot (about 3 s)

    table = dca(data=pd.DataFrame({"outcome": y, "model": p}), outcome="outcome", modelnames=["model"],
                thresholds=list(grid))
    nb = {name: table[table["model"] == name]["net_benefit"].to_numpy(dtype=float) for name in ("model", "all", "none")}
    avoided = table[table["model"] == "model"]["net_intervention_avoided"].to_numpy(dtype=float)
    better = nb["model"] > np.maximum(nb["all"], nb["none"]) + 1e-12
    return {"n": int(len(y)), "prevalence": float(y.mean()), "thresholds": grid.tolist(),
            "net_benefit": {"model": nb["model"].tolist(), "treat_all": nb["all"].tolist(),
                            "treat_none": nb["none"].tolist()},
            "interventions_avoided_per_100": (100 * avoided).tolist(), "useful_ranges": _runs(grid, better),
            "useful_share": float(better.mean())}


def _runs(grid: np.ndarray, mask: np.ndarray) -> list[list[float]]:
    """Contiguous stretches of the grid where ``mask`` holds, as [first, last] threshold pairs."""
    runs, start = [], None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        if start is not None and (not on or i == len(mask) - 1):
            runs.append([float(grid[start]), float(grid[i if on else i - 1])])
            start = None
    return runs


def net_benefit_at(curve: dict, thresholds=(0.05, 0.1, 0.2, 0.3, 0.5)) -> list[dict]:
    """Rows of a decision curve at chosen thresholds (those on its grid) for a report table."""
    grid = np.asarray(curve["thresholds"])
    rows = []
    for t in thresholds:
        hit = np.flatnonzero(np.isclose(grid, t))
        if len(hit):
            i = int(hit[0])
            rows.append({"threshold": float(grid[i]), **{k: v[i] for k, v in curve["net_benefit"].items()},
                         "interventions_avoided_per_100": curve["interventions_avoided_per_100"][i]})
    return rows
