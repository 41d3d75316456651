"""Extra sections of the metrics: calibration (+ temperature scaling), Wilson CIs, per-class, per-site metrics."""
from __future__ import annotations

import pandas as pd

from medfit.config import ExperimentConfig
from medfit.evaluate.calibration import apply_temperature, calibration_metrics, fit_temperature
from medfit.evaluate.classwise import add_class_evidence
from medfit.evaluate.multiclass import multiclass_metrics
from medfit.evaluate.sites import site_table
from medfit.evaluate.stats import delong_auc_ci, proportion_intervals
from medfit.task import Task


def extend_binary(result: dict, pred: pd.DataFrame, label: str, cfg: ExperimentConfig) -> dict:
    """Per split: Brier/ECE/reliability, Wilson CIs of the proportions, DeLong AUC CI; per-site rows; temperature."""
    e = cfg.evaluate
    val = pred[pred["split"] == "val"]
    temperature = None
    if getattr(e, "temperature_scaling", False) and val[label].nunique() == 2:
        temperature = fit_temperature(val[label].to_numpy(), val["prob"].to_numpy())
        result["temperature"] = {"value": temperature, "fitted_on": "val"}
    for split, entry in result["splits"].items():
        part = pred[pred["split"] == split]
        y, p = part[label].to_numpy().astype(int), part["prob"].to_numpy()
        if not len(y):
            continue
        entry["calibration"] = calibration_metrics(y, p)
        if temperature is not None:
            q = apply_temperature(p, temperature)
            cal = calibration_metrics(y, q)
            entry["calibration_scaled"] = {"brier": cal["brier"], "ece": cal["ece"], "reliability": cal["reliability"]}
        if "confusion" in entry:
            entry["wilson_ci"] = {k: list(v) for k, v in proportion_intervals(entry["confusion"], e.ci_level).items()}
        if 0 < y.sum() < len(y):
            auc, lo, hi = delong_auc_ci(y, p, e.ci_level)
            entry["auc_delong_ci"] = [lo, hi]
    if "site" in pred and pred["site"].nunique() > 1:
        result["sites"] = site_table(pred[pred["split"] != "train"], label, result["threshold"]["value"],
                                     bootstrap=min(e.bootstrap, 200), level=e.ci_level, seed=cfg.seed)
    return result


def extend_multiclass(result: dict, pred: pd.DataFrame, label: str, prob_cols: list[str], cfg: ExperimentConfig) -> dict:
    """Per split: weighted OvR AUC, per-class sensitivity/specificity/AUC and the confusion matrix."""
    names = list(cfg.data.class_names) or [c.removeprefix("prob_") for c in prob_cols]
    for split, entry in result["splits"].items():
        part = pred[pred["split"] == split]
        if len(part):
            m = multiclass_metrics(part[label].to_numpy(), part[prob_cols].to_numpy(), names)
            entry.update({"auc_weighted": m["auc_weighted"], "per_class": m["per_class"],
                          "confusion_matrix": m["confusion_matrix"], "class_names": m["class_names"]})
    return result


def extend_metrics(result: dict, pred: pd.DataFrame, cfg: ExperimentConfig) -> dict:
    """Add the clinical sections for the config's task (called by evaluate_predictions)."""
    task = Task.of(cfg.data)
    if task.is_binary:
        return extend_binary(result, pred, task.label, cfg)
    if task.is_multiclass:
        result = extend_multiclass(result, pred, task.label, task.probability_columns, cfg)
    return add_class_evidence(result, pred, cfg)
