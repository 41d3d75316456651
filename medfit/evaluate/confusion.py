"""Multiclass confusion matrix with counts and row percentages, and the most frequent confusion pairs with
example cases."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from medfit.run_folder import json_safe


def confusion_table(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict:
    """Counts (rows: true class, columns: predicted) and row percentages (None for a class absent from ``y``)."""
    cm = confusion_matrix(np.asarray(y).astype(int), np.asarray(pred).astype(int), labels=list(range(len(names))))
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(rows > 0, 100.0 * cm / rows, np.nan)
    return json_safe({"class_names": names, "counts": cm, "row_percent": pct, "row_totals": rows.ravel()})


def confusion_pairs(y: np.ndarray, pred: np.ndarray, names: list[str], top: int = 5, examples: int = 3,
                    confidence: np.ndarray | None = None, index=None) -> list[dict]:
    """The ``top`` most frequent (true, predicted) mistakes: count, share of the true class, and the row indices of
    up to ``examples`` cases (the most confident first when ``confidence``, e.g. the predicted class's probability,
    is given; ``index`` maps positions to row labels such as a DataFrame's index)."""
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    index = np.arange(len(y)) if index is None else np.asarray(index)
    cm = confusion_matrix(y, pred, labels=list(range(len(names))))
    off = [(int(cm[t, p]), t, p) for t in range(len(names)) for p in range(len(names)) if t != p and cm[t, p]]
    out = []
    for count, t, p in sorted(off, key=lambda c: (-c[0], c[1], c[2]))[:top]:
        rows = np.flatnonzero((y == t) & (pred == p))
        if confidence is not None:
            rows = rows[np.argsort(-np.asarray(confidence)[rows], kind="stable")]
        out.append({"true": names[t], "predicted": names[p], "count": count,
                    "share_of_true": count / int(cm[t].sum()), "examples": index[rows[:examples]].tolist()})
    return json_safe(out)
