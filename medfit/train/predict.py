"""Predict manifest rows with a trained network and write the predictions table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.datasets import ImageDataset
from medfit.data.manifest import Manifest
from medfit.train.module import probabilities


def probability_columns(manifest: Manifest) -> list[str]:
    """Names of the probability columns: ``prob`` for binary, ``prob_<class or label>`` otherwise."""
    if manifest.task == "binary":
        return ["prob"]
    names = manifest.label_columns if manifest.task == "multilabel" else manifest.class_names
    return [f"prob_{n}" for n in names]


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, dataset: ImageDataset, task: str, batch_size: int = 64,
                          progress: bool = True, desc: str = "predicting") -> np.ndarray:
    """Probabilities (N, outputs) for every item of a dataset."""
    model.eval()
    out = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, _, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out.append(probabilities(model(x), task).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def predictions_table(manifest: Manifest, probs: np.ndarray) -> pd.DataFrame:
    """The manifest's identifying columns, labels and one probability column per output."""
    keep = [c for c in ["image", "patient_id", "study_id", "slice_index", "offset", "site", "split",
                        *manifest.label_columns] if c in manifest.df]
    table = manifest.df[keep].copy()
    for j, col in enumerate(probability_columns(manifest)):
        table[col] = probs[:, j]
    return table


def predict_dataset(model: torch.nn.Module, manifest: Manifest, cfg: ExperimentConfig, out_csv: Path,
                    splits: list[str] | None = None, preloaded: dict | None = None) -> pd.DataFrame:
    """Predict every non-training split (or the given ones) and write ``predictions.csv``."""
    splits = splits or [s for s in manifest.df["split"].unique() if s != "train"]
    tables = []
    for split in splits:
        part = manifest.split(split)
        if not len(part):
            continue
        from medfit.data.volumes import dataset_for

        dataset = (preloaded or {}).get(split) or dataset_for(part, cfg, cfg.train.progress_bar, f"loading {split}")
        probs = predict_probabilities(model, dataset, manifest.task, cfg.train.batch_size * 2,
                                      cfg.train.progress_bar, f"predicting {split}")
        tables.append(predictions_table(part, probs))
    table = pd.concat(tables, ignore_index=True)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table
