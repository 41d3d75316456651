"""Optimiser and learning-rate schedule from an ``OptimConfig``: one code path for train, pretrain and vlm."""
from __future__ import annotations

import math

import torch
from timm.optim import param_groups_layer_decay

from medfit.config import OptimConfig
from medfit.errors import ConfigError


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
                max_warmup_share: float = 1.0, hold: tuple[int, float] | None = None
                ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-step linear warmup + cosine decay (None for ``scheduler: none``); ``hold`` = (step, multiplier): from that
    step on a constant multiplier instead (SWA's constant learning rate)."""
    if optim.scheduler == "none" and hold is None:
        return None
    total = max(1, total_steps)
    warmup = min(int(round(optim.warmup_epochs * steps_per_epoch)), int(total * max_warmup_share))
    start, ratio = hold or (total + 1, 1.0)

    def multiplier(s: int) -> float:
        if s >= start:
            return ratio
        return 1.0 if optim.scheduler == "none" else warmup_cosine(s, warmup, total, optim.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(opt, multiplier)


def layer_decay_groups(model: torch.nn.Module, optim: OptimConfig, layer_decay: float) -> list[dict]:
    """timm's layer-wise learning-rate decay (BEiT): the last layer group (head) at ``optim.lr``, each group below at
    ``layer_decay`` times the one above; biases, norms and the model's no-weight-decay list without weight decay."""
    if not 0 < layer_decay < 1 or not hasattr(model, "group_matcher"):
        raise ConfigError(f"train.layer_decay {layer_decay}: expected a value in (0, 1) and a plain timm network with "
                          f"layer groups (ViT, ConvNeXt, ResNet, ...), got {type(model).__name__}; or set 0")
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_layer_decay(model, optim.weight_decay, skip, layer_decay=layer_decay)
    return [{**g, "lr": optim.lr * g["lr_scale"]} for g in groups]


def lightning_optimizers(groups: list[dict], optim: OptimConfig, steps_per_epoch: int, total_steps: int,
                         max_warmup_share: float = 1.0, hold: tuple[int, float] | None = None):
    """What a LightningModule's ``configure_optimizers`` returns for these groups and settings."""
    opt = build_optimizer(groups, optim)
    schedule = lr_schedule(opt, optim, steps_per_epoch, total_steps, max_warmup_share, hold)
    if schedule is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
