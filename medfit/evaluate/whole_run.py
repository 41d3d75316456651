"""Every evaluation of a run folder in one call: the metrics, the study-level (augmented) comparison where the run
predicts key slices with neighbours, and the multilabel "any" label; what `medfit evaluate` and training runs use."""
from __future__ import annotations

from medfit.config import ExperimentConfig
from medfit.evaluate.any_label import evaluate_any_label
from medfit.evaluate.augmented_classes import evaluate_study_level
from medfit.run_folder import json_safe
from medfit.evaluate.run import evaluate_run
from medfit.run_folder import RunFolder
from medfit.task import Task


def evaluate_whole_run(run: RunFolder, cfg: ExperimentConfig | None = None) -> dict:
    """Metrics of the run (under ``cfg``, default the run's config), plus the results that apply to it."""
    cfg = cfg or run.read_config()
    metrics = evaluate_run(run, cfg)
    if cfg.volume.augmented_prediction:  # binary: study-level metrics at the val studies' threshold join the metrics
        level = evaluate_study_level(run, cfg=cfg).get("study_level")
        if level is not None:
            metrics["studies"] = json_safe(level)
            run.write_json("metrics", metrics)
    if Task.of(cfg.data).is_multilabel:
        evaluate_any_label(run, cfg)
    return metrics
