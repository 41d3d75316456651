"""What a run calls each predicted case: the class at the binary threshold chosen on validation, the most probable
class (multiclass; with the classes that clear their own validation thresholds), or the labels that clear theirs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.task import Task


def decision_columns(table: pd.DataFrame, task: Task, threshold: dict) -> tuple[pd.DataFrame, str | None]:
    """``table`` with ``predicted`` (and, for multiclass with per-class thresholds, ``above_threshold``) added, and
    a note when the run's metrics hold no threshold to call cases with (``threshold`` is metrics['threshold'])."""
    out, p = table.copy(), task.probability_matrix(table)
    if task.is_multiclass:
        names = np.array(task.class_names)
        out["predicted"] = names[p.argmax(axis=1)] if len(p) else []
        per_class = threshold.get("per_class")
        if per_class:
            out["above_threshold"] = _joined(p >= np.array([per_class[n] for n in task.class_names]), names)
        return out, None
    if task.is_binary:
        if threshold.get("value") is None:
            return out, "no threshold in the run's metrics (run `medfit evaluate RUN`): no predicted class written"
        names = np.array(task.class_names or ("0", "1"))
        out["predicted"] = names[(p[:, 0] >= float(threshold["value"])).astype(int)]
        return out, None
    per_label = threshold.get("per_label")
    if not per_label:
        return out, "no per-label thresholds in the run's metrics (run `medfit evaluate RUN`): no predicted labels"
    out["predicted"] = _joined(p >= np.array([per_label[n] for n in task.label_columns]), np.array(task.label_columns))
    return out, None


def _joined(called: np.ndarray, names: np.ndarray) -> list[str]:
    """Per row, the names called positive joined by ';' (empty when none)."""
    return [";".join(names[row]) for row in called]
