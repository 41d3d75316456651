"""Saliency galleries of multiclass and multilabel runs: per class the most confident correct cases and, per most
frequent confusion pair, the cases called the wrong class (each map explains the class the model called); per label
its true positives, false positives and false negatives at the label's threshold chosen on validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medfit.errors import DataError
from medfit.evaluate.confusion import confusion_pairs
from medfit.explain.gallery import _with_row_inputs, explain_rows, write_saliency_gallery
from medfit.run_folder import RunFolder
from medfit.task import Task

PAIRS = 6


def class_groups(pred: pd.DataFrame, task: Task, per_group: int = 2, pairs: int = PAIRS) -> list[dict]:
    """Groups of a multiclass split: ``correct <class>`` (most confident first) for every class, then the
    ``pairs`` most frequent ``<true> -> <predicted>`` confusions; each with its rows and the class to explain."""
    names = list(task.class_names)
    y, p = task.labels(pred).astype(int), task.probability_matrix(pred)
    called = p.argmax(axis=1)
    groups = []
    for k, name in enumerate(names):
        rows = np.flatnonzero((y == k) & (called == k))
        rows = rows[np.argsort(-p[rows, k], kind="stable")][:per_group]
        groups.append({"group": f"correct {name}", "true": name, "predicted": name, "class_index": k,
                       "rows": pred.iloc[rows]})
    for pair in confusion_pairs(y, called, names, pairs, per_group, p.max(axis=1), np.arange(len(pred))):
        groups.append({"group": f"{pair['true']} -> {pair['predicted']}", "true": pair["true"],
                       "predicted": pair["predicted"], "class_index": names.index(pair["predicted"]),
                       "count": pair["count"], "rows": pred.iloc[pair["examples"]]})
    return groups


def label_groups(pred: pd.DataFrame, task: Task, thresholds: dict, per_group: int = 2) -> list[dict]:
    """Per label at its validation threshold: true positives, false positives and false negatives (most confident
    calls first; false negatives lowest probability first)."""
    groups = []
    for j, name in enumerate(task.label_columns):
        y, p = pred[name].to_numpy().astype(int), pred[f"prob_{name}"].to_numpy()
        hit = p >= thresholds[name]
        for kind, sel, sign in (("TP", (y == 1) & hit, -1), ("FP", (y == 0) & hit, -1), ("FN", (y == 1) & ~hit, 1)):
            rows = np.flatnonzero(sel)
            rows = rows[np.argsort(sign * p[rows], kind="stable")][:per_group]
            groups.append({"group": f"{name} {kind}", "true": name if kind != "FP" else f"not {name}",
                           "predicted": name if kind != "FN" else f"not {name}", "class_index": j,
                           "rows": pred.iloc[rows]})
    return groups


def _true_names(part: pd.DataFrame, task: Task) -> list[str]:
    if task.is_multilabel:
        return [";".join(n for n in task.label_columns if r[n] == 1) or "none" for _, r in part.iterrows()]
    return [task.class_names[int(v)] for v in part[task.label]]


def write_class_gallery(run: RunFolder, split: str = "test", per_group: int = 2, method: str = "gradcam",
                        target_layer: str | None = None, pairs: int = PAIRS) -> Path:
    """Overlays of the class (or label) groups of a multiclass or multilabel run and their index (for the report)."""
    cfg = run.read_config()
    task = Task.of(cfg.data)
    pred = run.read_predictions()
    split = split if split in set(pred["split"]) else "val"
    pred = _with_row_inputs(run, pred[pred["split"] == split]).reset_index(drop=True)
    if task.is_multilabel:
        thresholds = run.read_metrics().get("threshold", {}).get("per_label")
        if not thresholds:
            raise DataError(f"{run.file('metrics')}: no per-label thresholds; run `medfit evaluate {run.path}` first")
        groups = label_groups(pred, task, thresholds, per_group)
    else:
        groups = class_groups(pred, task, per_group, pairs)
    entries = []
    for i, g in enumerate(groups):
        part = g.pop("rows")
        if part.empty:
            entries.append({**g, "png": None, "empty": True})
            continue
        recs = explain_rows(run, part, method, target_layer, run.saliency / f"g{i:02d}", _true_names(part, task),
                            class_index=g["class_index"])
        entries += [{**g, **r, "png": str(Path(r["png"]).relative_to(run.path))} for r in recs]
    return run.write_json("gallery", {"split": split, "method": method, "kind": task.kind, "cases": entries})


def write_gallery(run: RunFolder, split: str = "test", per_group: int = 2, method: str = "gradcam",
                  target_layer: str | None = None) -> Path:
    """The run's saliency gallery: TP/FP/TN/FN for binary runs, by class or label otherwise."""
    if Task.of(run.read_config().data).is_binary:
        return write_saliency_gallery(run, split, per_group, method, target_layer)
    return write_class_gallery(run, split, per_group, method, target_layer)
