"""The evidence sections of a run's metrics (what TRIPOD+AI and CLAIM reviewers ask for beyond an AUC with a CI).

Binary runs: calibration slope/intercept per split and before/after temperature scaling (``recalibration``), a
decision curve per split, conformal prediction sets (``conformal``), referral by uncertainty (``referral``),
subgroups (``subgroups``), the test set's AUC CI half-width (``sample_size``), ensemble seeds (``seeds``) and
test-time augmentation (``tta``). Multiclass runs: conformal sets, referral, seeds and TTA. Multilabel runs: seeds.
The single-split sections describe the headline split: test, else external.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.config import ExperimentConfig
from medfit.evaluate.calibration import calibration_slope_intercept, recalibration_summary
from medfit.evaluate.columns import SPREAD
from medfit.evaluate.conformal_run import run_conformal
from medfit.evaluate.referral import predictive_entropy, risk_coverage
from medfit.evaluate.sample_size import auc_ci_halfwidth, n_for_auc_halfwidth
from medfit.evaluate.seeds import seed_metrics
from medfit.evaluate.subgroup_columns import subgroup_columns
from medfit.evaluate.subgroups import subgroup_table
from medfit.evaluate.tta import tta_comparison
from medfit.evaluate.utility import decision_curve
from medfit.task import Task

HEADLINE = ("test", "external")


def headline_split(splits) -> str | None:
    """The split the single-split sections describe: test, else external, else None."""
    return next((s for s in HEADLINE if s in splits), None)


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def add_calibration(metrics: dict, pred: pd.DataFrame, label: str, level: float, headline: str | None) -> None:
    """Slope and intercept into every split's calibration; before/after temperature scaling on the headline split."""
    data = {s: (g[label].to_numpy().astype(int), g["prob"].to_numpy(dtype=float)) for s, g in pred.groupby("split")}
    for split, entry in metrics["splits"].items():
        if split in data and "calibration" in entry:
            cal = calibration_slope_intercept(*data[split], level)
            entry["calibration"].update({k: cal[k] for k in ("slope", "slope_ci", "intercept", "intercept_ci")})
    if headline and "val" in data and _both_classes(data["val"][0]) and _both_classes(data[headline][0]):
        metrics["recalibration"] = {**recalibration_summary(*data["val"], *data[headline], level), "split": headline}


def add_decision_curves(metrics: dict, pred: pd.DataFrame, label: str, grid: list[float]) -> None:
    """Net benefit of the model, treat-all and treat-none over the configured thresholds, per split."""
    for split, part in pred.groupby("split", sort=False):
        y = part[label].to_numpy().astype(int)
        if split in metrics["splits"] and _both_classes(y):
            metrics["splits"][split]["decision_curve"] = decision_curve(y, part["prob"].to_numpy(dtype=float),
                                                                        start=grid[0], stop=grid[1], step=grid[2])


def add_subgroups(metrics: dict, part: pd.DataFrame, manifest: pd.DataFrame | None, label: str,
                  cfg: ExperimentConfig, split: str) -> None:
    """A subgroup table per attribute on the headline split, at the carried threshold."""
    e = cfg.evaluate
    groups = subgroup_columns(part, manifest, list(e.subgroups), dict(e.subgroup_patterns))
    y, p = part[label].to_numpy().astype(int), part["prob"].to_numpy(dtype=float)
    metrics["subgroups"] = {name: {**subgroup_table(y, p, g, metrics["threshold"]["value"], min(e.bootstrap, 200),
                                                    e.ci_level, cfg.seed, e.subgroup_min_class), "split": split}
                            for name, g in groups.items()}


def sample_size(entry: dict, target: float, level: float, split: str) -> dict | None:
    """The AUC CI half-width this split's size and prevalence afford (Hanley-McNeil), and the n for ``target``."""
    n, pos = entry.get("n", 0), entry.get("positives", 0)
    if not 0 < pos < n or entry.get("auc") is None:
        return None
    auc = float(np.clip(max(entry["auc"], 1 - entry["auc"]), 0.5, 0.999))
    need = n_for_auc_halfwidth(target, pos / n, auc, level)
    ci = entry.get("auc_ci")
    return {**auc_ci_halfwidth(n, pos / n, auc, level), "split": split,
            "bootstrap_halfwidth": (ci[1] - ci[0]) / 2 if ci and None not in ci else None,
            "for_target": {"halfwidth": target, "n": need["n"], "positives": need["positives"]}}


def uncertainty_of(part: pd.DataFrame, task: Task, cfg: ExperimentConfig) -> tuple[np.ndarray, str]:
    """The spread over members / MC-dropout passes when the run has one, else the predictive entropy."""
    if SPREAD in part and part[SPREAD].max() > 0:
        sources = [f"{len(cfg.train.seeds)} ensemble members"] * (len(cfg.train.seeds) > 1) + \
                  [f"{cfg.evaluate.mc_dropout} MC-dropout passes"] * (cfg.evaluate.mc_dropout > 1)
        return part[SPREAD].to_numpy(dtype=float), "sd of the prediction over " + " x ".join(sources or ["samples"])
    return predictive_entropy(task.probability_matrix(part)[:, 0] if task.is_binary
                              else task.probability_matrix(part)), "predictive entropy"


def add_referral(metrics: dict, part: pd.DataFrame, task: Task, cfg: ExperimentConfig, split: str) -> None:
    """The risk-coverage curve of the headline split and its numbers at the configured referral rates."""
    u, kind = uncertainty_of(part, task, cfg)
    prob = part["prob"].to_numpy(dtype=float) if task.is_binary else task.probability_matrix(part)
    threshold = (metrics.get("threshold") or {}).get("value", 0.5)
    metrics["referral"] = {**risk_coverage(task.labels(part), prob, u, threshold, tuple(cfg.evaluate.referral_rates)),
                           "uncertainty": kind, "split": split}


def add_evidence(metrics: dict, pred: pd.DataFrame, cfg: ExperimentConfig,
                 manifest: pd.DataFrame | None = None) -> dict:
    """Every evidence section that applies to the run's task (see the module docstring); returns ``metrics``."""
    task, e = Task.of(cfg.data), cfg.evaluate
    headline = headline_split(metrics["splits"])
    part = pred[pred["split"] == headline] if headline else pred.iloc[:0]
    if task.is_binary:
        add_calibration(metrics, pred, task.label, e.ci_level, headline)
        add_decision_curves(metrics, pred, task.label, list(e.decision_thresholds))
        if headline and (e.subgroups or e.subgroup_patterns):
            add_subgroups(metrics, part, manifest, task.label, cfg, headline)
        if headline:
            metrics["sample_size"] = sample_size(metrics["splits"][headline], e.target_auc_halfwidth, e.ci_level,
                                                 headline)
    if headline and not task.is_multilabel:
        metrics["conformal"] = run_conformal(pred, task, e, headline)
        add_referral(metrics, part, task, cfg, headline)
    metrics["seeds"] = seed_metrics(pred, task, e)
    metrics["tta"] = tta_comparison(pred, task, list(e.tta), cfg.volume.combine, e.ci_level)
    for key in [k for k in ("conformal", "sample_size", "seeds", "tta") if metrics.get(k) is None]:
        metrics.pop(key, None)
    return metrics
