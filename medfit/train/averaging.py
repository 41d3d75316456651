"""Weight averaging for training: an EMA whose decay warms up, run by Lightning's ``WeightAveraging`` callback."""
from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging


class WarmupEMA:
    """EMA update with decay ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the timm / TensorFlow warmup).

    A fixed decay keeps ``decay**steps`` of the first step's weights and BatchNorm statistics in the average, which
    on a short from-scratch run is enough to ruin it; the warmup lets the early weights fade.
    """

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged) -> torch.Tensor:
        n = float(num_averaged)
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        return d * averaged + (1.0 - d) * current


def ema_callback(decay: float) -> WeightAveraging:
    """Lightning callback keeping an EMA of the weights; validation, checkpoints and predictions use the average."""
    return WeightAveraging(avg_fn=WarmupEMA(decay))
