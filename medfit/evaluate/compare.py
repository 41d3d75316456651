"""Paired comparison of two runs on the same cases: DeLong test of the AUC difference per split."""
from __future__ import annotations

import pandas as pd

from medfit.data.rows import row_keys
from medfit.errors import DataError
from medfit.evaluate.stats import delong_test
from medfit.run_folder import RunFolder

def _binary_predictions(run: RunFolder) -> tuple[pd.DataFrame, str]:
    cfg = run.read_config()
    pred = run.read_predictions()
    if cfg.data.task != "binary":
        raise DataError(f"{run.path}: task {cfg.data.task!r}; the DeLong comparison here is for binary runs")
    return pred, cfg.data.label_columns[0]


def paired_keys(pa: pd.DataFrame, pb: pd.DataFrame, where: tuple) -> list[str]:
    """The identity columns both tables have; refused when they do not make every row of each table unique."""
    keys = row_keys(pa, pb)
    for table, run in zip((pa, pb), where):
        repeated = int(table.duplicated(keys).sum())
        if repeated:
            raise DataError(f"{run}: {repeated} predictions share {', '.join(keys)} with another row (several rows per "
                            f"case), so the runs cannot be paired row by row; compare runs of the same volume mode and "
                            f"neighbours")
    return keys


def compare_runs(run_a: RunFolder, run_b: RunFolder, splits: list[str] | None = None, level: float = 0.95) -> dict:
    """DeLong paired test per split, on the rows both runs predicted (matched one to one by ``paired_keys``)."""
    pa, label_a = _binary_predictions(run_a)
    pb, label_b = _binary_predictions(run_b)
    run_a, run_b = run_a.path, run_b.path
    keys = paired_keys(pa, pb, (run_a, run_b))
    merged = pa[keys + [label_a, "prob"]].merge(pb[keys + [label_b, "prob"]], on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        raise DataError(f"{run_a} and {run_b} share no predicted cases (matched by {', '.join(keys)}); "
                        "compare runs evaluated on the same test set")
    la, lb = (f"{label_a}_a", f"{label_b}_b") if label_a == label_b else (label_a, label_b)
    if (merged[la] != merged[lb]).any():
        raise DataError(f"{run_a} and {run_b} disagree on the labels of {(merged[la] != merged[lb]).sum()} shared cases")
    out = {"run_a": str(run_a), "run_b": str(run_b), "level": level, "matched_on": keys, "splits": {}}
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
