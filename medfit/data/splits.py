"""Patient-grouped, stratified splits drawn from the training pool."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medfit.errors import DataError

if TYPE_CHECKING:  # the manifest module imports this one
    from medfit.data.manifest import Manifest


def _strata(manifest: Manifest) -> np.ndarray:
    return manifest.target.strata(manifest.df)


def _units(manifest: Manifest, groups) -> np.ndarray:
    """The unit each row is split with: ``groups`` (one value per manifest row) or else the patient id."""
    if groups is None:
        return manifest.df["patient_id"].to_numpy()
    groups = np.asarray(groups)
    if len(groups) != len(manifest.df):
        raise DataError(f"split groups: {len(groups)} values for {len(manifest.df)} manifest rows")
    return groups


def assign_validation_split(manifest: Manifest, fraction: float, seed: int = 0, groups=None) -> Manifest:
    """Move about ``fraction`` of the training pool to ``val``, stratified by label and grouped by patient, or by
    ``groups`` (one unit per manifest row, e.g. ``medfit.audit.split_groups``: patient merged with duplicate group)."""
    df = manifest.df.copy()
    pool = np.flatnonzero(df["split"].to_numpy() == "train")
    if len(pool) == 0:
        raise DataError("no training rows to draw a validation split from (need split == 'train')")
    n_splits = max(2, int(round(1.0 / fraction)))
    sub = manifest.with_df(df.iloc[pool])
    unit = "patients" if groups is None else "split groups (patient + duplicate group)"
    groups = _units(manifest, groups)[pool]
    if len(set(groups)) < n_splits:
        raise DataError(f"only {len(set(groups))} {unit} in the training pool; cannot hold out {fraction:.0%} by them")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, val_idx = next(folds.split(np.zeros(len(sub)), _strata(sub), groups))
    split_col = df.columns.get_loc("split")
    df.iloc[pool[val_idx], split_col] = "val"
    return manifest.with_df(df)


def limit_per_split(manifest: Manifest, limit: int, seed: int = 0) -> Manifest:
    """Keep at most ``limit`` rows per split (random, by patient-stable order) for quick runs."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in manifest.df.groupby("split").indices.items():
        idx = np.asarray(idx)
        keep.extend(sorted(rng.permutation(idx)[:limit]) if len(idx) > limit else idx)
    return manifest.with_df(manifest.df.iloc[sorted(keep)])


def patient_kfold(manifest: Manifest, n_splits: int, seed: int = 0, groups=None):
    """Yield (train_index, test_index) folds stratified by label and grouped by patient (or by ``groups``)."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    yield from folds.split(np.zeros(len(manifest)), _strata(manifest), _units(manifest, groups))
