"""Optimiser and learning-rate schedule from an ``OptimConfig``: one code path for train, pretrain and vlm."""
from __future__ import annotations

import math

import torch

from medfit.config import OptimConfig


def build_optimizer(groups: list[dict], optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum (Nesterov when asked), over parameter groups (a group may set its own lr/decay)."""
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                               nesterov=optim.nesterov and optim.momentum > 0)
    return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_schedule(opt: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int, total_steps: int,
                max_warmup_share: float = 1.0) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-step linear warmup + cosine decay (None for ``scheduler: none``)."""
    if optim.scheduler == "none":
        return None
    total = max(1, total_steps)
    warmup = min(int(round(optim.warmup_epochs * steps_per_epoch)), int(total * max_warmup_share))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total, optim.min_lr_ratio))


def lightning_optimizers(groups: list[dict], optim: OptimConfig, steps_per_epoch: int, total_steps: int,
                         max_warmup_share: float = 1.0):
    """What a LightningModule's ``configure_optimizers`` returns for these groups and settings."""
    opt = build_optimizer(groups, optim)
    schedule = lr_schedule(opt, optim, steps_per_epoch, total_steps, max_warmup_share)
    if schedule is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
