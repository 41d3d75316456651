"""Per-site metrics of a binary run at the threshold carried from validation (internal vs external sites)."""
from __future__ import annotations

import pandas as pd

from medfit.evaluate.metrics import FOLD_METRICS, bootstrap_ci, fast_binary_metrics


def site_table(pred: pd.DataFrame, label: str, threshold: float, internal_sites: list[str] | None = None,
               bootstrap: int = 200, level: float = 0.95, seed: int = 0) -> list[dict]:
    """One row per (split, site) of a binary run at the carried threshold: n, AUC and threshold metrics with CIs."""
    metric = fast_binary_metrics(threshold)
    rows = []
    for (split, site), part in pred.groupby(["split", "site"], sort=True):
        y, p = part[label].to_numpy().astype(int), part["prob"].to_numpy()
        row = {"split": split, "site": str(site), "n": int(len(y)), "positives": int(y.sum())}
        if internal_sites is not None:
            row["role"] = "internal" if str(site) in internal_sites else "external"
        point = metric(y, p)
        ci = bootstrap_ci(metric, y, p, bootstrap, level, seed) if bootstrap and 0 < y.sum() < len(y) else {}
        for key in FOLD_METRICS:
            row[key] = point.get(key)
            if key in ci:
                row[f"{key}_ci"] = list(ci[key])
        rows.append(row)
    order = {"val": 0, "test": 1, "external": 2}
    return sorted(rows, key=lambda r: (order.get(r["split"], 3), r.get("role", ""), r["site"]))
