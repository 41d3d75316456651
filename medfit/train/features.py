"""The trained network's pooled features: the input of its classification head, recorded by a forward hook while the
network predicts (so features and probabilities come from one pass)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medfit.models.covariates import call_model


def feature_layer(model: nn.Module) -> nn.Module | None:
    """The head whose input is the pooled features: timm's classifier, a ``head`` Linear, else the last Linear."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Linear):
            return head
    if isinstance(getattr(model, "head", None), nn.Linear):
        return model.head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@contextmanager
def tap_features(model: nn.Module) -> Iterator[list[np.ndarray]]:
    """Within the block, every forward pass appends its batch of head inputs (N, D) to the yielded list (it stays
    empty for a network without a Linear head)."""
    batches: list[np.ndarray] = []
    layer = feature_layer(model)
    hook = None
    if layer is not None:
        hook = layer.register_forward_pre_hook(
            lambda _m, args: batches.append(args[0].detach().flatten(1).float().cpu().numpy()))
    try:
        yield batches
    finally:
        if hook is not None:
            hook.remove()


def stacked(batches: list[np.ndarray], n: int) -> np.ndarray | None:
    """The recorded batches as one (n, D) array, or None when the hook saw nothing (or not one row per input)."""
    if not batches:
        return None
    out = np.concatenate(batches)
    return out if len(out) == n else None


@torch.no_grad()
def pooled_features(model: nn.Module, dataset: Dataset, batch_size: int = 64) -> np.ndarray | None:
    """(N, D) head inputs of every item of a dataset (eval mode), or None when the network has no Linear head."""
    model.eval()
    with tap_features(model) as batches:
        for x, _, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            call_model(model, x)  # an image batch, or (image, covariates)
    return stacked(batches, len(dataset))
