"""Shift between development and test: metrics whose CIs part between validation and a later split, and a domain
classifier (can a simple model tell validation images from test images?) on the prepared inputs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medfit.config import ExperimentConfig
from medfit.errors import MedfitError
from medfit.evaluate.stats import delong_auc_ci
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder
from medfit.task import Task

REFERENCE = "val"
# prevalence-free metrics first: a PPV/NPV change may come from another case mix alone
SHIFT_METRICS = ["sensitivity", "specificity", "auc", "accuracy", "f1", "ppv", "npv"]
PIXELS = 16  # the domain classifier sees each input averaged down to PIXELS x PIXELS
MAX_PER_SPLIT = 600  # inputs per split read for the domain classifier (a seeded sample beyond that)
FOLDS = 5


def interval(entry: dict, key: str) -> list[float] | None:
    """A metric's CI: the Wilson interval of a proportion when the split has one (a bootstrap CI collapses to a point
    at 0 or 1, e.g. a validation specificity of 1.000), else its bootstrap CI."""
    return (entry.get("wilson_ci") or {}).get(key) or entry.get(f"{key}_ci")


def metric_shifts(metrics: dict, reference: str = REFERENCE) -> list[dict]:
    """Metrics (AUC and those at the carried threshold) whose CI on a later split does not overlap the reference
    split's CI, largest difference first."""
    splits = metrics.get("splits", {})
    ref = splits.get(reference, {})
    found = []
    for split, entry in splits.items():
        if split in (reference, "train"):
            continue
        for key in SHIFT_METRICS:
            a, b, ci_a, ci_b = ref.get(key), entry.get(key), interval(ref, key), interval(entry, key)
            if None in (a, b) or not ci_a or not ci_b or None in (*ci_a, *ci_b):
                continue
            if ci_b[1] < ci_a[0] or ci_b[0] > ci_a[1]:
                found.append({"split": split, "metric": key, "reference": reference, "reference_value": a,
                              "value": b, "difference": b - a, "reference_ci": list(ci_a), "ci": list(ci_b)})
    return sorted(found, key=lambda f: -abs(f["difference"]))


def pixel_features(image: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """An input (C, H, W), (S, C, H, W) or (C, D, H, W) averaged over its leading axes and down to size x size."""
    plane = np.asarray(image, dtype=np.float32).reshape(-1, *image.shape[-2:]).mean(axis=0)
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(plane)[None, None], size)
    return pooled.flatten().numpy()


def domain_auc(a: np.ndarray, b: np.ndarray, folds: int = FOLDS, seed: int = 0, level: float = 0.95) -> dict | None:
    """Cross-validated AUC (DeLong CI) of a logistic regression telling rows of ``a`` from rows of ``b`` (0.5: the
    two look alike); None when either side has fewer rows than folds."""
    if min(len(a), len(b)) < folds:
        return None
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    auc, lo, hi = delong_auc_ci(y, p, level)
    return {"auc": float(auc), "auc_ci": [float(lo), float(hi)], "n": [len(a), len(b)]}


def domain_classifier(features: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, class_names: list[str],
                      other: str, reference: str = REFERENCE, seed: int = 0, level: float = 0.95) -> dict | None:
    """Reference vs ``other`` split: the domain AUC over all inputs and within each class (so that another class mix
    alone cannot make the two splits look different)."""
    overall = domain_auc(features[reference], features[other], seed=seed, level=level)
    if overall is None:
        return None
    per_class = {}
    for k, name in enumerate(class_names if labels is not None else []):
        a, b = features[reference][labels[reference] == k], features[other][labels[other] == k]
        result = domain_auc(a, b, seed=seed, level=level)
        if result is not None:
            per_class[name] = result
    return {**overall, "per_class": per_class, "features": f"{PIXELS}x{PIXELS} pixels of the prepared inputs",
            "model": f"logistic regression, {FOLDS}-fold cross-validated"}


def split_features(run: RunFolder, cfg: ExperimentConfig, splits: list[str]) -> tuple[dict, dict | None]:
    """Pixel features and single labels (None for multilabel) of a sample of each split's manifest rows."""
    manifest = run.read_manifest()
    task = Task.of(cfg.data)
    features, labels = {}, {} if not task.is_multilabel else None
    for split in splits:
        part = manifest[manifest["split"] == split]
        if len(part) > MAX_PER_SPLIT:
            part = part.sample(MAX_PER_SPLIT, random_state=cfg.seed)
        load, _ = input_loader(cfg, part)
        features[split] = np.stack([pixel_features(load(row)) for _, row in part.iterrows()])
        if labels is not None:
            labels[split] = task.labels(part)
    return features, labels


def evaluate_shift(run: RunFolder, cfg: ExperimentConfig, metrics: dict) -> dict:
    """The run's shift record: metric findings, and per later split the domain classifier (or why it did not run)."""
    later = [s for s in metrics.get("splits", {}) if s not in (REFERENCE, "train")]
    record = {"reference": REFERENCE, "findings": metric_shifts(metrics), "domain": {}}
    if not later or REFERENCE not in metrics.get("splits", {}) or not cfg.evaluate.domain_classifier:
        return record
    try:
        features, labels = split_features(run, cfg, [REFERENCE, *later])
    except (MedfitError, OSError, KeyError, ValueError) as exc:  # e.g. a predictions-only run whose images are gone
        record["domain_unavailable"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return record
    for split in later:
        result = domain_classifier(features, labels, list(cfg.data.class_names), split, seed=cfg.seed, level=cfg.evaluate.ci_level)
        if result is not None:
            record["domain"][split] = result
    return record

