"""Paired comparison of two runs on the same cases: DeLong test of the AUC difference per split."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medfit.errors import DataError
from medfit.evaluate.stats import delong_test


def _binary_predictions(run_dir: Path) -> tuple[pd.DataFrame, str]:
    from medfit.evaluate.run import load_run_config

    cfg = load_run_config(run_dir)
    path = run_dir / "predictions.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; train or predict first")
    if cfg.data.task != "binary":
        raise DataError(f"{run_dir}: task {cfg.data.task!r}; the DeLong comparison here is for binary runs")
    return pd.read_csv(path), cfg.data.label_columns[0]


def compare_runs(run_a: str | Path, run_b: str | Path, splits: list[str] | None = None, level: float = 0.95) -> dict:
    """DeLong paired test per split, on the cases both runs predicted (matched by image and split)."""
    run_a, run_b = Path(run_a), Path(run_b)
    pa, label_a = _binary_predictions(run_a)
    pb, label_b = _binary_predictions(run_b)
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
