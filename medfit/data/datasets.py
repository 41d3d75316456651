"""Datasets that turn manifest rows into tensors, preloaded once through the preprocessing cache."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest


class ImageDataset(Dataset):
    """Preprocessed images of one manifest (held in memory) with their labels and row indices."""

    def __init__(self, manifest: Manifest, cfg: ExperimentConfig, progress: bool = True, desc: str = "loading"):
        from medfit.preprocess import cached_preprocess, load_prepared

        self.manifest = manifest
        d = cfg.data
        pre = cached_preprocess(cfg)
        refs = manifest.df["image"].tolist()
        first = load_prepared(refs[0], pre, d.image_size, d.channels) if refs else None
        shape = (len(refs), *first.shape) if first is not None else (0, d.channels, d.image_size, d.image_size)
        images = np.empty(shape, dtype=np.float32)
        for i, ref in enumerate(tqdm(refs, desc=desc, disable=not progress, leave=False)):
            images[i] = first if i == 0 else load_prepared(ref, pre, d.image_size, d.channels)
        self.images = torch.from_numpy(images)
        labels = manifest.labels()
        self.labels = torch.from_numpy(labels.astype(np.float32 if manifest.task != "multiclass" else np.int64))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i], i


def class_balance_weights(manifest: Manifest) -> torch.Tensor:
    """Per-class loss weights (binary: the positive-class weight n_neg / n_pos)."""
    y = manifest.labels()
    if manifest.task == "binary":
        pos = max(float(y.sum()), 1.0)
        return torch.tensor([(len(y) - pos) / pos], dtype=torch.float32)
    if manifest.task == "multilabel":
        pos = np.clip(y.sum(axis=0), 1, None)
        return torch.tensor((len(y) - pos) / pos, dtype=torch.float32)
    counts = np.bincount(y, minlength=manifest.num_outputs).clip(min=1)
    return torch.tensor(len(y) / (len(counts) * counts), dtype=torch.float32)


class EpochSeededSampler(Sampler[int]):
    """Shuffles (or draws class-balanced samples) from seed + epoch, so a resumed run repeats the same order."""

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None):
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=g).tolist())
        w = torch.as_tensor(self.weights, dtype=torch.double)
        return iter(torch.multinomial(w, self.n, replacement=True, generator=g).tolist())


def balanced_sample_weights(manifest: Manifest) -> np.ndarray:
    """Per-row sampling weights that make every class equally likely (binary and multiclass)."""
    y = manifest.labels().astype(int)
    counts = np.bincount(y)
    return 1.0 / counts[y]
