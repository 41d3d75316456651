"""The per-class evidence of multiclass and multilabel runs, per split: one-vs-rest AUC with bootstrap and DeLong
CIs (macro and weighted too), thresholds chosen on validation per class and carried to every split (Wilson CIs),
top-k accuracy, Cohen's kappa, classwise calibration, the confusion matrix and its most frequent pairs, label
co-occurrence. Composed from the pure leaves; evaluate_predictions adds it to the metrics."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medfit.config import ExperimentConfig
from medfit.errors import DataError
from medfit.evaluate.calibration import classwise_calibration
from medfit.evaluate.class_thresholds import RULE, class_threshold_metrics, class_thresholds, threshold_rule
from medfit.evaluate.confusion import confusion_pairs, confusion_table
from medfit.run_folder import json_safe
from medfit.evaluate.kappa import kappa_ci
from medfit.evaluate.multiclass import top_k_accuracy
from medfit.evaluate.multilabel import label_cooccurrence
from medfit.evaluate.ovr_auc import ovr_auc_table
from medfit.evaluate.stats import wilson_interval
from medfit.task import Task

log = logging.getLogger(__name__)

PAIR_EXAMPLES = 3  # example images kept per confusion pair
TOP_PAIRS = 5


def kappa_weights(cfg: ExperimentConfig) -> str | None:
    """Quadratic weights when the classes are ordered grades (evaluate.ordinal), else unweighted kappa."""
    return "quadratic" if cfg.evaluate.ordinal else None


def split_labels(part: pd.DataFrame, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of a predictions table: (N,) class indices or (N, L) 0/1, and (N, K)."""
    return task.labels(part).astype(int), task.probability_matrix(part)


def chosen_thresholds(pred: pd.DataFrame, task: Task, cfg: ExperimentConfig) -> dict:
    """Per-class (per-label) thresholds chosen on the val split, or the reason they could not be chosen."""
    e = cfg.evaluate
    val = pred[pred["split"] == "val"]
    out = {"method": e.threshold, "value": None if e.threshold == "youden" else e.threshold_value, "chosen_on": "val"}
    if val.empty:
        return {**out, "error": "the predictions have no 'val' rows; per-class thresholds are chosen on validation"}
    try:
        y, p = split_labels(val, task)
        return {**out, "per_class": class_thresholds(y, p, list(task.output_names), e.threshold, e.threshold_value)}
    except DataError as exc:
        log.warning("per-class thresholds: %s", exc)
        return {**out, "error": str(exc)}


def class_block(part: pd.DataFrame, task: Task, cfg: ExperimentConfig, thresholds: dict | None) -> dict:
    """Every per-class table of one split (the ``classes`` entry of a split in the run's metrics)."""
    e, names = cfg.evaluate, list(task.output_names)
    y, p = split_labels(part, task)
    block = {"auc": ovr_auc_table(y, p, names, e.bootstrap, e.ci_level, cfg.seed),
             "calibration": classwise_calibration(y, p, names)}
    if thresholds:
        block["thresholds"] = class_threshold_metrics(y, p, thresholds, e.ci_level)
    if task.is_multiclass:
        block.update(multiclass_block(part, y, p, names, cfg, thresholds))
    else:
        block["cooccurrence"] = label_cooccurrence(y, names)
    return json_safe(block)


def multiclass_block(part: pd.DataFrame, y: np.ndarray, p: np.ndarray, names: list[str], cfg: ExperimentConfig,
                     thresholds: dict | None) -> dict:
    """Top-k, kappa, confusion (counts, row %, pairs with example images) at argmax, and the threshold rule."""
    e, pred = cfg.evaluate, p.argmax(axis=1)
    out = {"top_k": top_k_accuracy(y, p, level=e.ci_level),
           "kappa": kappa_ci(y, pred, len(names), kappa_weights(cfg), e.bootstrap, e.ci_level, cfg.seed),
           "confusion": confusion_table(y, pred, names),
           "confusion_pairs": confusion_pairs(y, pred, names, TOP_PAIRS, PAIR_EXAMPLES, p.max(axis=1),
                                              part["image"].astype(str).to_numpy())}
    if thresholds:
        rule = threshold_rule(p, thresholds)
        hits = int((rule == y).sum())
        out["decision_rule"] = {"rule": RULE, "accuracy": hits / len(y) if len(y) else None,
                                "accuracy_ci": wilson_interval(hits, len(y), e.ci_level), "hits": hits, "n": len(y)}
    return out


def headline(entry: dict, block: dict) -> dict:
    """Flat copies of the block's headline numbers for the metric tables (weighted AUC CI, kappa, top-2)."""
    auc = block["auc"]
    out = {"auc_weighted": auc["auc_weighted"], "auc_weighted_ci": auc["auc_weighted_ci"]}
    if "kappa" in block:
        out.update(kappa=block["kappa"]["kappa"], kappa_ci=block["kappa"]["ci"])
    top2 = block.get("top_k", {}).get("top_2")
    if top2:
        out.update(top_2=top2["accuracy"], top_2_ci=top2["ci"])
    return {**entry, **out}


def add_class_evidence(result: dict, pred: pd.DataFrame, cfg: ExperimentConfig) -> dict:
    """Metrics of a multiclass or multilabel run with the per-class evidence of every split added."""
    task = Task.of(cfg.data)
    chosen = chosen_thresholds(pred, task, cfg)
    thresholds = chosen.get("per_class")
    for split, entry in result["splits"].items():
        part = pred[pred["split"] == split]
        if len(part):
            block = class_block(part, task, cfg, thresholds)
            result["splits"][split] = {**headline(entry, block), "classes": block}
    if task.is_multiclass:
        result["threshold"] = {**chosen, "decision": "argmax", "weights_kappa": kappa_weights(cfg) or "none"}
    else:
        result["class_thresholds"] = chosen
    return result
