"""Datasets of prepared model inputs (held in memory) and the epoch-seeded sampler that orders them."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from medfit.data.manifest import Manifest
from medfit.errors import ConfigError


class PreparedDataset(Dataset):
    """Every row of a manifest turned into a model input by ``load(row)`` once, held in memory, with its label;
    with encoded ``covariates`` (N, F) an item's input is the pair (image, covariates)."""

    def __init__(self, manifest: Manifest, load: Callable[[object], np.ndarray], progress: bool = True,
                 desc: str = "loading", dtype=np.float32, covariates: np.ndarray | None = None):
        self.manifest = manifest
        rows = [row for _, row in manifest.df.iterrows()]
        first = load(rows[0]) if rows else np.zeros((1, 1, 1), np.float32)
        images = np.empty((len(rows), *first.shape), dtype=dtype)
        for i, row in enumerate(tqdm(rows, desc=desc, disable=not progress, leave=False)):
            images[i] = first if i == 0 else load(row)
        self.images = torch.from_numpy(images)
        self.labels = manifest.target.label_tensor(manifest.labels())
        self.covariates = None if covariates is None else torch.as_tensor(covariates, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i].float()
        return (image if self.covariates is None else (image, self.covariates[i])), self.labels[i], i


class EpochSeededSampler(Sampler[int]):
    """Shuffles (or draws class-balanced samples) from seed + epoch, so a resumed run repeats the same order;
    ``repeats`` k: every image k times per epoch (each copy with its own augmentation draw)."""

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None, repeats: int = 1):
        if repeats < 1:
            raise ConfigError(f"train.augment.repeats {repeats}: expected 1 or more (copies of each image per epoch)")
        self.n, self.seed, self.weights, self.epoch, self.repeats = n, seed, weights, 0, repeats

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n * self.repeats

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        if self.weights is None:
            return iter((torch.randperm(len(self), generator=g) % self.n).tolist())
        w = torch.as_tensor(self.weights, dtype=torch.double)
        return iter(torch.multinomial(w, len(self), replacement=True, generator=g).tolist())


def balanced_sample_weights(manifest: Manifest) -> np.ndarray:
    """Per-row sampling weights that make every class equally likely (binary and multiclass)."""
    y = manifest.labels().astype(int)
    counts = np.bincount(y)
    return 1.0 / counts[y]
