"""A multilabel run's derived "any" label (any label positive), per row and per patient (or study), thresholded on
validation instead of a fixed 0.5, with the per-label AUCs and thresholded metrics beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.config import EvaluateConfig, ExperimentConfig
from medfit.errors import DataError
from medfit.evaluate.augmented import multilabel_metrics, patient_any
from medfit.evaluate.class_thresholds import class_threshold_metrics, class_thresholds
from medfit.run_folder import json_safe
from medfit.evaluate.multilabel import any_label, any_label_metrics
from medfit.run_folder import RunFolder


def _any_tables(pred: pd.DataFrame, labels: list[str], group: str, rule: str) -> dict[str, pd.DataFrame]:
    """Per split: the row-level (y_any, p_any) and the per-group table (any label on any of the group's rows)."""
    out = {}
    for split, part in pred.groupby("split", sort=False):
        y, p = any_label(part[labels].to_numpy(), part[[f"prob_{n}" for n in labels]].to_numpy(), rule)
        out[split] = (pd.DataFrame({"y_any": y, "p_any": p}), patient_any(part, labels, group))
    return out


def any_label_results(pred: pd.DataFrame, labels: list[str], e: EvaluateConfig, group: str,
                      rule: str = "max") -> dict:
    """Per split: per-label AUCs and metrics at the val-chosen per-label thresholds; the "any" label of the rows
    and of each ``group`` at thresholds chosen on the val rows / val groups (evaluate.threshold method)."""
    if "val" not in set(pred["split"]):
        raise DataError("the predictions have no 'val' rows; the 'any' label's threshold is chosen on validation")
    cols = [f"prob_{n}" for n in labels]
    val = pred[pred["split"] == "val"]
    per_label_t = class_thresholds(val[labels].to_numpy().astype(int), val[cols].to_numpy(), labels, e.threshold,
                                   e.threshold_value)
    tables = _any_tables(pred, labels, group, rule)
    rows_val, groups_val = tables["val"]
    results = {"group": group, "rule": rule, "threshold": {"method": e.threshold, "chosen_on": "val",
                                                           "per_label": per_label_t}, "splits": {}}
    for split, part in pred.groupby("split", sort=False):
        Y, P = part[labels].to_numpy().astype(int), part[cols].to_numpy()
        entry = multilabel_metrics(Y, P, labels)
        at_t = class_threshold_metrics(Y, P, per_label_t, e.ci_level)
        for name in labels:
            entry["per_label"][name].update({k: at_t[name][k] for k in ("threshold", "sensitivity", "specificity",
                                                                        "ppv", "npv", "wilson_ci")})
        entry["macro"].update({k: float(np.nanmean([at_t[n][k] if at_t[n][k] is not None else np.nan
                                                    for n in labels])) for k in ("sensitivity", "specificity")})
        rows, groups = tables[split]
        entry["any"] = any_label_metrics(rows_val["y_any"], rows_val["p_any"], rows["y_any"], rows["p_any"],
                                         e.threshold, e.threshold_value, e.ci_level)
        entry["any_" + group] = any_label_metrics(groups_val["y_any"], groups_val["p_any"], groups["y_any"],
                                                  groups["p_any"], e.threshold, e.threshold_value, e.ci_level)
        results["splits"][split] = entry
    return json_safe(results)


def evaluate_any_label(run: RunFolder, cfg: ExperimentConfig | None = None) -> dict:
    """Write the run's multilabel results (``multilabel_any``): per split, per-label metrics and the derived "any"
    label of the rows and of each study (or patient), each at a threshold chosen on validation."""
    cfg = cfg or run.read_config()
    pred = run.read_predictions()
    group = "study_id" if "study_id" in pred else "patient_id"
    results = any_label_results(pred, list(cfg.data.label_columns), cfg.evaluate, group)
    run.write_json("multilabel_any", results)
    return results
