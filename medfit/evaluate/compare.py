"""Paired comparison of two runs on the same cases: DeLong test of the AUC difference per split."""
from __future__ import annotations

import pandas as pd

from medfit.errors import DataError
from medfit.evaluate.stats import delong_test
from medfit.run_folder import RunFolder


def _binary_predictions(run: RunFolder) -> tuple[pd.DataFrame, str]:
    cfg = run.read_config()
    pred = run.read_predictions()
    if cfg.data.task != "binary":
        raise DataError(f"{run.path}: task {cfg.data.task!r}; the DeLong comparison here is for binary runs")
    return pred, cfg.data.label_columns[0]


def compare_runs(run_a: RunFolder, run_b: RunFolder, splits: list[str] | None = None, level: float = 0.95) -> dict:
    """DeLong paired test per split, on the cases both runs predicted (matched by image and split)."""
    pa, label_a = _binary_predictions(run_a)
    pb, label_b = _binary_predictions(run_b)
    run_a, run_b = run_a.path, run_b.path
    merged = pa[["image", "split", label_a, "prob"]].merge(
        pb[["image", "split", label_b, "prob"]], on=["image", "split"], suffixes=("_a", "_b"))
    if merged.empty:
        raise DataError(f"{run_a} and {run_b} share no predicted cases (matched by image and split); "
                        "compare runs evaluated on the same test set")
    la, lb = (f"{label_a}_a", f"{label_b}_b") if label_a == label_b else (label_a, label_b)
    if (merged[la] != merged[lb]).any():
        raise DataError(f"{run_a} and {run_b} disagree on the labels of {(merged[la] != merged[lb]).sum()} shared cases")
    out = {"run_a": str(run_a), "run_b": str(run_b), "level": level, "splits": {}}
    for split in splits or sorted(set(merged["split"]) - {"train"}):
        part = merged[merged["split"] == split]
        if part.empty or part[la].nunique() < 2:
            continue
        n_a, n_b = (pa["split"] == split).sum(), (pb["split"] == split).sum()
        res = delong_test(part[la].to_numpy(), part["prob_a"].to_numpy(), part["prob_b"].to_numpy(), level)
        out["splits"][split] = {**res.to_dict(), "unmatched_a": int(n_a - len(part)), "unmatched_b": int(n_b - len(part))}
    if not out["splits"]:
        raise DataError(f"no split with both classes among the shared cases of {run_a} and {run_b}")
    return out
