"""Prediction with uncertainty: ensemble members, MC-dropout passes and test-time-augmentation views, combined.

Every member gives (passes, views, N, outputs) probabilities. A member's prediction is the mean over its passes and
views; the run's prediction (``prob`` columns) is the mean over every member and pass, and ``spread`` is the sd of
P(positive) across them (binary; the mean over classes of the per-class sd otherwise). With test-time augmentation
``no_tta_<prob column>`` keeps the prediction of the unaugmented view alone, for the with/without comparison; with
several members, ``member<seed>_<prob column>`` keeps each member's own prediction (for the mean +- sd over seeds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.errors import ConfigError
from medfit.evaluate.columns import NO_TTA, SPREAD, member_column
from medfit.evaluate.referral import member_spread
from medfit.task import Task
from medfit.train.predict import predictions_table, split_datasets
from medfit.train.tta import tta_views


def has_dropout(model: nn.Module) -> bool:
    """Whether any part of the network drops activations at random in training mode (dropout, drop-path)."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return True
        if any(float(getattr(m, name, 0) or 0) > 0 for name in ("drop_rate", "drop_prob", "drop_path_rate")):
            return True
    return False


def dropout_mode(model: nn.Module) -> nn.Module:
    """Training mode for dropout only: normalisation layers keep their running statistics (eval mode)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            m.eval()
    return model


@torch.no_grad()
def sample_probabilities(model: nn.Module, dataset: Dataset, task: Task, cfg: ExperimentConfig, batch_size: int,
                         passes: int = 1, progress: bool = True, desc: str = "predicting") -> np.ndarray:
    """(passes, views, N, outputs) probabilities: MC-dropout passes (seeded) of every TTA view of every item."""
    e = cfg.evaluate
    model = dropout_mode(model) if passes > 1 else model.eval()
    batches = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for b, (x, _, _) in enumerate(tqdm(loader, desc=desc, disable=not progress, leave=False)):
        x, extra = x if isinstance(x, (tuple, list)) else (x, None)  # (image, covariates): only the image is viewed
        views = tta_views(x, list(e.tta), cfg.train.augment, e.tta_strength, e.tta_samples, seed=b)
        per_pass = []
        for p in range(passes):
            if passes > 1:
                torch.manual_seed(cfg.seed * 7919 + b * 131 + p)
            per_pass.append([task.probabilities(model(v) if extra is None else model(v, extra)).float().numpy()
                             for v in views])
        batches.append(np.asarray(per_pass))
    model.eval()
    if not batches:
        return np.zeros((passes, 1, 0, task.num_outputs), dtype=np.float32)
    return np.concatenate(batches, axis=2)


@dataclass
class Combined:
    """The run's probabilities, their spread (or None), the unaugmented ones (or None) and each member's own."""

    prob: np.ndarray
    spread: np.ndarray | None
    no_tta: np.ndarray | None
    members: list[np.ndarray]


def combine_samples(samples: list[np.ndarray]) -> Combined:
    """Combine the members' (passes, views, N, outputs) probabilities (see the module docstring)."""
    draws = np.concatenate([s.mean(axis=1) for s in samples])  # (members x passes, N, outputs)
    spread = member_spread(draws) if len(draws) > 1 else None
    no_tta = np.concatenate([s[:, 0] for s in samples]).mean(axis=0) if samples[0].shape[1] > 1 else None
    return Combined(draws.mean(axis=0), spread, no_tta, [s.mean(axis=(0, 1)) for s in samples])


def mc_passes(models: list[nn.Module], cfg: ExperimentConfig) -> int:
    """Passes per member: evaluate.mc_dropout when set (the network must have dropout), else one."""
    passes = cfg.evaluate.mc_dropout or 1
    if passes > 1 and not all(has_dropout(m) for m in models):
        raise ConfigError(f"evaluate.mc_dropout {passes}: the network has no dropout to sample; set model.drop_rate "
                          "(e.g. 0.2) and retrain, or set evaluate.mc_dropout: 0")
    return passes


def uncertain_table(manifest: Manifest, combined: Combined, seeds: list[int]) -> pd.DataFrame:
    """The predictions table with the ``spread``, ``no_tta_`` and ``member<seed>_`` columns where they apply."""
    table = predictions_table(manifest, combined.prob)
    cols = manifest.target.probability_columns
    if combined.spread is not None:
        table[SPREAD] = combined.spread
    if combined.no_tta is not None:
        for j, col in enumerate(cols):
            table[NO_TTA + col] = combined.no_tta[:, j]
    if len(combined.members) > 1:
        for seed, probs in zip(seeds, combined.members):
            for j, col in enumerate(cols):
                table[member_column(seed, col)] = probs[:, j]
    return table


def predict_members(models: list[nn.Module], seeds: list[int], manifest: Manifest, cfg: ExperimentConfig,
                    splits: list[str] | None = None, preloaded: dict | None = None, batch_size: int = 0,
                    covariates: dict | None = None) -> pd.DataFrame:
    """The predictions table of every non-training split (or ``splits``) by a model or an ensemble (one seed each);
    ``covariates``: the run's covariate encoder."""
    passes = mc_passes(models, cfg)
    tables = []
    for split, part, dataset in split_datasets(manifest, cfg, splits, preloaded, covariates):
        samples = [sample_probabilities(m, dataset, manifest.target, cfg, batch_size or cfg.train.batch_size * 2,
                                        passes, cfg.train.progress_bar, f"predicting {split}") for m in models]
        tables.append(uncertain_table(part, combine_samples(samples), seeds))
    return pd.concat(tables, ignore_index=True)
