"""Augmented prediction for multiclass and multilabel runs: each study's slices combined per class, compared with the
key slice alone on the same studies (per-class paired DeLong with Holm, paired bootstrap of the macro AUC)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medfit.config import ExperimentConfig
from medfit.evaluate.augmented import evaluate_augmented, study_class_predictions
from medfit.evaluate.compare_classes import compare_class_aucs
from medfit.run_folder import json_safe
from medfit.run_folder import RunFolder
from medfit.task import Task


def class_augmented_comparison(studies: pd.DataFrame, task: Task, n_bootstrap: int = 1000, level: float = 0.95,
                               seed: int = 0) -> dict:
    """Combined (a) vs key slice alone (b) on one split's studies; accuracy of both for multiclass."""
    cols, names = task.probability_columns, list(task.output_names)
    y = task.labels(studies).astype(int)
    combined, single = studies[cols].to_numpy(), studies[[f"single_{c}" for c in cols]].to_numpy()
    out = {"studies": int(len(studies)), **compare_class_aucs(y, combined, single, names, n_bootstrap, level, seed)}
    if task.is_multiclass:
        out["accuracy_combined"] = float((combined.argmax(1) == y).mean()) if len(y) else None
        out["accuracy_single"] = float((single.argmax(1) == y).mean()) if len(y) else None
    return json_safe(out)


def class_augmented_table(results: dict) -> str:
    """A Markdown table: split, studies, macro AUC single / combined, difference with its CI, bootstrap p."""
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| split | studies | single-slice macro AUC | combined macro AUC | difference (CI) | bootstrap p |",
             "|---|---|---|---|---|---|"]
    for split, r in results["splits"].items():
        m = r["macro"]
        ci = m.get("ci") or [None, None]
        lines.append(f"| {split} | {r['studies']} | {fmt(m['auc_macro_b'])} | {fmt(m['auc_macro_a'])} | "
                     f"{fmt(m['difference'])} ({fmt(ci[0])} to {fmt(ci[1])}) | {fmt(m['p_value'])} |")
    return "\n".join(lines)


def class_augmented_results(pred: pd.DataFrame, cfg: ExperimentConfig, rule: str) -> tuple[dict, pd.DataFrame]:
    """(results, study table) of a multiclass or multilabel slice-mode run with neighbours."""
    task, e = Task.of(cfg.data), cfg.evaluate
    studies = study_class_predictions(pred, list(task.label_columns), task.probability_columns, task.kind, rule)
    results = {"rule": rule, "neighbours": cfg.volume.neighbours, "task": task.kind, "splits": {}}
    for split, part in studies.groupby("split", sort=False):
        if np.unique(task.labels(part), axis=0).shape[0] > 1:
            results["splits"][split] = class_augmented_comparison(part, task, min(e.bootstrap, 1000), e.ci_level,
                                                                  cfg.seed)
    return results, studies


def evaluate_study_level(run: RunFolder, rule: str | None = None, cfg: ExperimentConfig | None = None) -> dict:
    """Write the run's augmented-prediction results, table and study predictions: the binary comparison
    (evaluate_augmented), or the per-class one for multiclass and multilabel runs."""
    cfg = cfg or run.read_config()
    if Task.of(cfg.data).is_binary:
        return evaluate_augmented(run, rule, cfg=cfg)
    results, studies = class_augmented_results(run.read_predictions(), cfg, rule or cfg.volume.combine)
    run.write_csv("study_predictions", studies)
    run.write_json("augmented", results)
    run.write_text("augmented_table", class_augmented_table(results) + "\n")
    return results
