"""Score a run folder's predictions.csv and write metrics.json."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from medfit.config import EvaluateConfig, ExperimentConfig, config_from_dict
from medfit.errors import DataError
from medfit.evaluate.metrics import bootstrap_ci, choose_threshold, fast_binary_metrics

SPLIT_ORDER = ["train", "val", "test", "external"]


def _clean(value):
    """JSON-safe numbers (NaN -> None)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _ordered_splits(splits) -> list[str]:
    return sorted(set(splits), key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def evaluate_binary(pred: pd.DataFrame, label: str, cfg: EvaluateConfig, seed: int = 0) -> dict:
    """Threshold from val, then every split's metrics with stratified bootstrap CIs."""
    val = pred[pred["split"] == "val"]
    if val.empty:
        raise DataError("predictions.csv has no 'val' rows; the threshold is chosen on validation")
    threshold = choose_threshold(val[label].to_numpy(), val["prob"].to_numpy(), cfg.threshold, cfg.threshold_value)
    metric = fast_binary_metrics(threshold)
    splits = {}
    for split in _ordered_splits(pred["split"]):
        part = pred[pred["split"] == split]
        y, p = part[label].to_numpy().astype(int), part["prob"].to_numpy()
        point = metric(y, p)
        ci = bootstrap_ci(metric, y, p, cfg.bootstrap, cfg.ci_level, seed) if cfg.bootstrap and len(np.unique(y)) > 1 else {}
        entry = {"n": int(len(y)), "positives": int(y.sum())}
        for key, value in point.items():
            entry[key] = value
            if key in ci:
                entry[f"{key}_ci"] = list(ci[key])
        entry["confusion"] = {k: int(v) for k, v in zip(
            ["tn", "fp", "fn", "tp"], np.bincount(2 * y + (p >= threshold), minlength=4))}
        splits[split] = entry
    return {"threshold": {"method": cfg.threshold, "value": threshold, "chosen_on": "val"}, "splits": splits}


def evaluate_multiclass(pred: pd.DataFrame, label: str, prob_cols: list[str], cfg: EvaluateConfig, seed: int = 0) -> dict:
    """Macro one-vs-rest AUC and accuracy (argmax) per split, with bootstrap CIs."""
    def metric(y, p):
        try:
            a = roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(p.shape[1])))
        except ValueError:
            a = float("nan")
        return {"auc": a, "accuracy": accuracy_score(y, p.argmax(1))}

    splits = {}
    for split in _ordered_splits(pred["split"]):
        part = pred[pred["split"] == split]
        y, p = part[label].to_numpy().astype(int), part[prob_cols].to_numpy()
        entry = {"n": int(len(y)), **metric(y, p)}
        if cfg.bootstrap:
            for k, v in bootstrap_ci(metric, y, p, cfg.bootstrap, cfg.ci_level, seed).items():
                entry[f"{k}_ci"] = list(v)
        splits[split] = entry
    return {"threshold": {"method": "argmax"}, "splits": splits}


def evaluate_multilabel(pred: pd.DataFrame, labels: list[str], cfg: EvaluateConfig, seed: int = 0) -> dict:
    """Per-label binary evaluation (each with its own validation threshold) and macro AUC per split."""
    per_label = {}
    for label in labels:
        sub = pred[["split", label, f"prob_{label}"]].rename(columns={f"prob_{label}": "prob"})
        per_label[label] = evaluate_binary(sub, label, cfg, seed)
    splits = {}
    for split in _ordered_splits(pred["split"]):
        aucs = [per_label[lab]["splits"][split]["auc"] for lab in labels]
        splits[split] = {"n": int((pred["split"] == split).sum()), "auc": float(np.nanmean(aucs)) if not all(map(math.isnan, aucs)) else float("nan")}
    return {"threshold": {"method": cfg.threshold, "per_label": {k: v["threshold"]["value"] for k, v in per_label.items()}},
            "splits": splits, "per_label": {k: v["splits"] for k, v in per_label.items()}}


def evaluate_predictions(pred: pd.DataFrame, cfg: ExperimentConfig) -> dict:
    """Metrics for a predictions table under the config's task and evaluation settings."""
    d, e = cfg.data, cfg.evaluate
    if d.task == "binary":
        result = evaluate_binary(pred, d.label_columns[0], e, cfg.seed)
    elif d.task == "multiclass":
        cols = [c for c in pred.columns if c.startswith("prob_")]
        result = evaluate_multiclass(pred, d.label_columns[0], cols, e, cfg.seed)
    else:
        result = evaluate_multilabel(pred, d.label_columns, e, cfg.seed)
    from medfit.evaluate.extended import extend_metrics

    result = extend_metrics(result, pred, cfg)
    return {"task": d.task, "ci_level": e.ci_level, "bootstrap": e.bootstrap, **result}


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """The resolved config saved in a run folder."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{path}: not found; is {run_dir} a medfit run folder?")
    return config_from_dict(yaml.safe_load(path.read_text()))


def evaluate_run(run_dir: str | Path, cfg: ExperimentConfig | None = None) -> dict:
    """Read ``predictions.csv`` of a run folder, write ``metrics.json`` and return it."""
    run_dir = Path(run_dir)
    cfg = cfg or load_run_config(run_dir)
    pred_path = run_dir / "predictions.csv"
    if not pred_path.is_file():
        raise DataError(f"{pred_path}: not found; train or predict first")
    metrics = evaluate_predictions(pd.read_csv(pred_path), cfg)
    info = run_dir / "train_info.json"
    if info.is_file():
        metrics.update(json.loads(info.read_text()))
    metrics = _clean(metrics)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
