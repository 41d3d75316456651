"""Predict manifest rows with a network and build the predictions table (one row per manifest row)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.models.covariates import call_model
from medfit.task import Task
from medfit.train.inputs import dataset_for

ID_COLUMNS = ["image", "patient_id", "study_id", "slice_index", "offset", "roi_label", "site", "split"]


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, dataset: Dataset, task: Task, batch_size: int = 64,
                          progress: bool = True, desc: str = "predicting") -> np.ndarray:
    """Probabilities (N, outputs) for every item of a dataset."""
    model.eval()
    out = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, _, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out.append(task.probabilities(call_model(model, x)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, task.num_outputs), dtype=np.float32)


def predictions_table(manifest: Manifest, probs: np.ndarray) -> pd.DataFrame:
    """The manifest's identifying columns, labels and one probability column per output."""
    keep = [c for c in [*ID_COLUMNS, *manifest.label_columns] if c in manifest.df]
    table = manifest.df[keep].copy()
    for j, col in enumerate(manifest.target.probability_columns):
        table[col] = probs[:, j]
    return table


def split_datasets(manifest: Manifest, cfg: ExperimentConfig, splits: list[str] | None = None,
                   preloaded: dict | None = None, covariates: dict | None = None) -> Iterator[tuple[str, Manifest, Dataset]]:
    """(split, its rows, their dataset) for every non-empty non-training split (or ``splits``): preloaded ones as
    given, others prepared now (with the run's covariate encoder)."""
    for split in splits or [s for s in manifest.df["split"].unique() if s != "train"]:
        part = manifest.split(split)
        if len(part):
            yield split, part, (preloaded or {}).get(split) or dataset_for(
                part, cfg, cfg.train.progress_bar, f"loading {split}", covariates)


def predict_splits(model: torch.nn.Module, manifest: Manifest, cfg: ExperimentConfig, splits: list[str] | None = None,
                   preloaded: dict | None = None, batch_size: int = 0, covariates: dict | None = None) -> pd.DataFrame:
    """The predictions table of every non-training split (or the given ones); ``covariates``: the run's encoder."""
    tables = [predictions_table(part, predict_probabilities(model, dataset, manifest.target,
                                                            batch_size or cfg.train.batch_size * 2,
                                                            cfg.train.progress_bar, f"predicting {split}"))
              for split, part, dataset in split_datasets(manifest, cfg, splits, preloaded, covariates)]
    return pd.concat(tables, ignore_index=True)
