"""Each ensemble member scored on its own (its own threshold chosen on validation), summarised as mean +- sd over
seeds per split, to stand beside the ensemble's pooled metrics and CIs."""
from __future__ import annotations

import pandas as pd

from medfit.config import EvaluateConfig
from medfit.evaluate.columns import member_column, member_seeds
from medfit.evaluate.metrics import choose_threshold, fast_binary_metrics
from medfit.evaluate.multiclass import ovr_auc
from medfit.evaluate.referral import seed_summary
from medfit.task import Task


def member_split_metrics(pred: pd.DataFrame, task: Task, seed: int, e: EvaluateConfig) -> dict:
    """One member's metrics per evaluated split: binary as the run's (threshold from val), else AUC and accuracy."""
    cols = [member_column(seed, c) for c in task.probability_columns]
    out = {}
    if task.is_binary:
        val = pred[pred["split"] == "val"]
        threshold = choose_threshold(val[task.label].to_numpy(), val[cols[0]].to_numpy(), e.threshold,
                                     e.threshold_value)
        metric = fast_binary_metrics(threshold)
    for split, part in pred.groupby("split", sort=False):
        y, p = task.labels(part), part[cols].to_numpy(dtype=float)
        if task.is_binary:
            out[split] = {**metric(y, p[:, 0]), "threshold": threshold}
        elif task.is_multiclass:
            out[split] = {"auc": ovr_auc(y, p), "accuracy": float((p.argmax(axis=1) == y).mean())}
        else:
            out[split] = {"auc": task.auc(y, p)}
    return out


def seed_metrics(pred: pd.DataFrame, task: Task, e: EvaluateConfig) -> dict | None:
    """Per split, mean +- sd over the members of every metric; None when the table holds no members."""
    seeds = member_seeds(pred, task.probability_columns[0])
    if len(seeds) < 2:
        return None
    per_seed = {s: member_split_metrics(pred, task, s, e) for s in seeds}
    return {"seeds": seeds, "members": len(seeds), "splits": seed_summary(list(per_seed.values())),
            "per_seed": {str(s): m for s, m in per_seed.items()}}
