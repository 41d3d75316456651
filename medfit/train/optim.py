"""Optimiser and learning-rate schedule from an ``OptimConfig``: one code path for train, pretrain and vlm."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from timm.optim import param_groups_layer_decay
from timm.scheduler import CosineLRScheduler

from medfit.config import OptimConfig
from medfit.errors import ConfigError


def build_optimizer(groups: list[dict], optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum (Nesterov when asked), over parameter groups (a group may set its own lr/decay)."""
    if optim.optimizer == "sgd":
        if optim.nesterov and optim.momentum <= 0:
            raise ConfigError(f"optim.nesterov: Nesterov momentum needs optim.momentum > 0 (got {optim.momentum}); "
                              "set a momentum such as 0.9 or nesterov: false")
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                               nesterov=optim.nesterov)
    return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine_restarts(optim: OptimConfig, steps_per_epoch: int, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR multiplier per step of timm's CosineLRScheduler with warm restarts (SGDR: cycles of ``restart_epochs``
    (T_0), each ``restart_mult`` (T_mult) times longer, after the warmup), read off a one-parameter probe optimiser
    at lr 1, so every parameter group keeps its own base rate (head/backbone) and ``min_lr_ratio`` of it."""
    if optim.restart_epochs <= 0 or optim.restart_mult < 1:
        raise ConfigError(f"optim.restart_epochs {optim.restart_epochs} / restart_mult {optim.restart_mult}: the "
                          "first cycle needs a positive length in epochs and each next one at least as long (T_mult >= 1)")
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = CosineLRScheduler(probe, t_initial=max(1, round(optim.restart_epochs * steps_per_epoch)),
                                 lr_min=optim.min_lr_ratio, cycle_mul=optim.restart_mult, cycle_limit=max(1, total_steps),
                                 warmup_t=warmup_steps, warmup_lr_init=1.0 / max(1, warmup_steps), warmup_prefix=True,
                                 t_in_epochs=False)

    def factor(step: int) -> float:
        schedule.step_update(step)
        return float(probe.param_groups[0]["lr"])
    return factor


def lr_schedule(opt: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int, total_steps: int,
                max_warmup_share: float = 1.0, hold: tuple[int, float] | None = None
                ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-step linear warmup + cosine decay, or timm's cosine with warm restarts (None for ``scheduler: none``);
    ``hold`` = (step, multiplier): from that step on a constant multiplier instead (SWA's constant learning rate)."""
    if optim.scheduler == "none" and hold is None:
        return None
    total = max(1, total_steps)
    warmup = min(int(round(optim.warmup_epochs * steps_per_epoch)), int(total * max_warmup_share))
    start, ratio = hold or (total + 1, 1.0)
    restarts = cosine_restarts(optim, steps_per_epoch, warmup, total) if optim.scheduler == "cosine_restarts" else None

    def multiplier(s: int) -> float:
        if s >= start:
            return ratio
        if restarts is not None:
            return restarts(s)
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
