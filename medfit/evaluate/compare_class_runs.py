"""Compare two multiclass or multilabel runs on the cases both predicted: per-class paired DeLong tests with Holm
correction and a paired bootstrap of the macro AUC, per split; ``compare_any`` picks this or the binary test."""
from __future__ import annotations

import pandas as pd

from medfit.errors import DataError
from medfit.evaluate.compare import compare_runs, paired_keys
from medfit.evaluate.compare_classes import compare_class_aucs
from medfit.run_folder import RunFolder
from medfit.task import Task

def _task_and_predictions(run: RunFolder) -> tuple[Task, pd.DataFrame]:
    return Task.of(run.read_config().data), run.read_predictions()


def paired_predictions(run_a: RunFolder, run_b: RunFolder) -> tuple[Task, pd.DataFrame, list[str], list[str]]:
    """The task, the merged table of the cases both runs predicted (matched one to one on their identifying columns), and the
    probability columns of a and b in it; refuses runs of other tasks or classes, or with disagreeing labels."""
    (ta, pa), (tb, pb) = _task_and_predictions(run_a), _task_and_predictions(run_b)
    if (ta.kind, ta.output_names) != (tb.kind, tb.output_names):
        raise DataError(f"{run_a.path} ({ta.kind}: {', '.join(ta.output_names)}) and {run_b.path} ({tb.kind}: "
                        f"{', '.join(tb.output_names)}) predict different things; compare runs of the same task")
    keys = paired_keys(pa, pb, (run_a.path, run_b.path))  # one row to one row (data.rows.ROW_KEYS)
    labels, probs = list(ta.label_columns), ta.probability_columns
    merged = pa[keys + labels + probs].merge(pb[keys + labels + probs], on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        raise DataError(f"{run_a.path} and {run_b.path} share no predicted cases (matched by {', '.join(keys)}); "
                        "compare runs evaluated on the same test set")
    differ = (merged[[f"{c}_a" for c in labels]].to_numpy() != merged[[f"{c}_b" for c in labels]].to_numpy()).any(1)
    if differ.any():
        raise DataError(f"{run_a.path} and {run_b.path} disagree on the labels of {int(differ.sum())} shared cases")
    merged = merged.rename(columns={f"{c}_a": c for c in labels})
    return ta, merged, [f"{c}_a" for c in probs], [f"{c}_b" for c in probs]


def compare_class_runs(run_a: RunFolder, run_b: RunFolder, splits: list[str] | None = None, level: float = 0.95,
                       n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per split (default: every non-train split): per-class DeLong (Holm) and the macro AUC paired bootstrap."""
    task, merged, cols_a, cols_b = paired_predictions(run_a, run_b)
    out = {"run_a": str(run_a.path), "run_b": str(run_b.path), "task": task.kind, "level": level,
           "class_names": list(task.output_names), "splits": {}}
    for split in splits or sorted(set(merged["split"]) - {"train"}):
        part = merged[merged["split"] == split]
        if part.empty:
            continue
        y = task.labels(part).astype(int)
        res = compare_class_aucs(y, part[cols_a].to_numpy(), part[cols_b].to_numpy(), list(task.output_names),
                                 n_bootstrap, level, seed)
        out["splits"][split] = {"n": int(len(part)), **res}
    if not out["splits"]:
        raise DataError(f"no shared cases of {run_a.path} and {run_b.path} in the splits {splits}")
    return out


def compare_any(run_a: RunFolder, run_b: RunFolder, splits: list[str] | None = None, level: float = 0.95,
                n_bootstrap: int = 1000) -> dict:
    """The binary paired DeLong test (compare_runs) or, for multiclass and multilabel runs, compare_class_runs."""
    if Task.of(run_a.read_config().data).is_binary:
        return {"task": "binary", **compare_runs(run_a, run_b, splits, level)}
    return compare_class_runs(run_a, run_b, splits, level, n_bootstrap)
