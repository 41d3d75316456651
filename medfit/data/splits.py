"""Patient-grouped, stratified splits drawn from the training pool."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medfit.data.manifest import Manifest
from medfit.errors import DataError


def _strata(manifest: Manifest) -> np.ndarray:
    if manifest.task == "multilabel":
        # stratify on the most frequent positive label of each row (0 when none)
        y = manifest.df[manifest.label_columns].to_numpy()
        return np.where(y.any(axis=1), y.argmax(axis=1) + 1, 0)
    return manifest.df[manifest.label_columns[0]].to_numpy()


def assign_validation_split(manifest: Manifest, fraction: float, seed: int = 0) -> Manifest:
    """Move about ``fraction`` of the training pool to ``val``, stratified by label and grouped by patient."""
    df = manifest.df.copy()
    pool = np.flatnonzero(df["split"].to_numpy() == "train")
    if len(pool) == 0:
        raise DataError("no training rows to draw a validation split from (need split == 'train')")
    n_splits = max(2, int(round(1.0 / fraction)))
    sub = Manifest(df.iloc[pool].reset_index(drop=True), manifest.label_columns, manifest.class_names, manifest.task)
    groups = sub.df["patient_id"].to_numpy()
    if len(set(groups)) < n_splits:
        raise DataError(f"only {len(set(groups))} patients in the training pool; cannot hold out {fraction:.0%} by patient")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, val_idx = next(folds.split(np.zeros(len(sub)), _strata(sub), groups))
    split_col = df.columns.get_loc("split")
    df.iloc[pool[val_idx], split_col] = "val"
    return Manifest(df, manifest.label_columns, manifest.class_names, manifest.task)


def limit_per_split(manifest: Manifest, limit: int, seed: int = 0) -> Manifest:
    """Keep at most ``limit`` rows per split (random, by patient-stable order) for quick runs."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in manifest.df.groupby("split").indices.items():
        idx = np.asarray(idx)
        keep.extend(sorted(rng.permutation(idx)[:limit]) if len(idx) > limit else idx)
    df = manifest.df.iloc[sorted(keep)].reset_index(drop=True)
    return Manifest(df, manifest.label_columns, manifest.class_names, manifest.task)


def patient_kfold(manifest: Manifest, n_splits: int, seed: int = 0):
    """Yield (train_index, test_index) folds stratified by label and grouped by patient."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    yield from folds.split(np.zeros(len(manifest)), _strata(manifest), manifest.df["patient_id"].to_numpy())
