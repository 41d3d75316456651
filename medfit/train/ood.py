"""The run's out-of-distribution gate: fitted after training on the training images' pooled features, its threshold
set on validation (``audit.ood_fpr``), every other split scored; saved in the run folder for ``medfit predict``."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from torch import nn

from medfit.audit.ood import METHOD, OodGate, fit_gate, ood_line, outside_counts
from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.run_folder import RunFolder, atomic_write
from medfit.train.features import feature_layer, pooled_features
from medfit.train.inputs import dataset_for

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["ood_distance", "outside_training"]


def save_gate(run: RunFolder, gate: OodGate) -> None:
    """Write the gate's arrays (npz, no pickled objects) atomically."""
    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **gate.arrays())
    atomic_write(run.file("ood_gate"), write)


def load_gate(run: RunFolder) -> OodGate | None:
    """The run's gate, or None when it has none (an older run, a network without a Linear head, audit.ood off)."""
    if not run.has("ood_gate"):
        return None
    with np.load(run.file("ood_gate"), allow_pickle=False) as arrays:
        return OodGate.from_arrays(arrays)


def score_table(df: pd.DataFrame, gate: OodGate, features: np.ndarray) -> pd.DataFrame:
    """The identifying columns of scored rows with their distance and whether they lie outside."""
    keep = [c for c in ("image", "patient_id", "split", "label", "reviewed") if c in df]
    distance = gate.distances(features)
    return df[keep].reset_index(drop=True).assign(ood_distance=np.round(distance, 4),
                                                  outside_training=distance > gate.threshold)


def fit_ood_gate(model: nn.Module, datasets: dict, cfg: ExperimentConfig, manifest: Manifest,
                 run: RunFolder, covariates: dict | None = None) -> dict | None:
    """Fit the gate on the train split's features, threshold on val, score val and every held-out split; write
    the gate, its record and the scores; returns the record (None when no gate applies). ``covariates``: the run's
    covariate encoder (the held-out splits are read with their covariates, as the network needs them)."""
    if not cfg.audit.ood:
        return None
    batch = cfg.train.batch_size * 2
    train, val = (pooled_features(model, datasets[s], batch) for s in ("train", "val"))
    if train is None or val is None:
        log.info("OOD gate: %s has no Linear head to take pooled features from; no gate fitted", type(model).__name__)
        return None
    labels = None if manifest.target.is_multilabel else manifest.split("train").labels()
    gate = fit_gate(train, labels, val, cfg.audit.ood_fpr)
    tables = [score_table(manifest.split("val").df, gate, val)]
    for split in (s for s in manifest.df["split"].unique() if s not in ("train", "val")):
        part = manifest.split(split)
        tables.append(score_table(part.df, gate, pooled_features(model, dataset_for(part, cfg, False, covariates=covariates), batch)))
    scores = pd.concat(tables, ignore_index=True)
    record = {"method": METHOD, "features": f"input of the {type(feature_layer(model)).__name__} head "
                                            f"({train.shape[1]} values)",
              "fpr": gate.fpr, "threshold": gate.threshold, "train_n": len(train),
              "splits": {s: outside_counts(part["outside_training"].to_numpy())
                         for s, part in scores.groupby("split", sort=False)}}
    save_gate(run, gate)
    run.write_csv("ood_scores", scores)
    run.write_json("ood", record)
    log.info("OOD gate: %s", ood_line(record))
    return record

