"""Training losses beyond the task's cross-entropy: soft (mixed, smoothed) targets and focal loss, for every Task."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target
from torchvision.ops import sigmoid_focal_loss

from medfit.config import TrainConfig
from medfit.task import Task


def dense_targets(task: Task, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Labels as dense (B, outputs) targets, label-smoothed the task's way (timm's ``mixup_target`` at lam 1)."""
    if task.is_multiclass:
        return mixup_target(y.long(), task.num_outputs, 1.0, smoothing)
    return mixup_target(y.float().view(len(y), -1), task.num_outputs, 1.0, smoothing, multi_label=True)


def soft_cross_entropy(task: Task, logits: torch.Tensor, target: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against dense targets: softmax CE with class probabilities (timm's SoftTargetCrossEntropy,
    class-weighted), or BCE with ``weights`` as the positive-class weight."""
    if task.is_multiclass:
        return F.cross_entropy(logits, target, weight=weights)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weights)


def focal_loss(task: Task, logits: torch.Tensor, target: torch.Tensor, gamma: float,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss against dense targets: sigmoid focal loss (torchvision) per output, class-balanced by
    ``alpha = w / (1 + w)`` for a positive-class weight ``w``; softmax focal loss (MONAI) for multiclass."""
    if task.is_multiclass:
        from monai.losses import FocalLoss  # heavy import (all of MONAI), only for a multiclass focal run

        # MONAI averages over classes as well as images: times K to keep the scale of cross-entropy
        return FocalLoss(use_softmax=True, gamma=gamma, weight=weights)(logits, target) * task.num_outputs
    loss = sigmoid_focal_loss(logits, target, alpha=-1, gamma=gamma, reduction="none")
    if weights is not None:
        alpha = weights / (1 + weights)
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.mean()


class TrainingLoss:
    """The loss of a training step: the task's cross-entropy, or focal loss, on hard or mixed (dense) targets."""

    def __init__(self, task: Task, cfg: TrainConfig):
        self.task, self.cfg = task, cfg

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                 mixed: bool = False) -> torch.Tensor:
        """``mixed``: ``y`` is already dense and smoothed (from mixup); otherwise hard labels."""
        cfg = self.cfg
        if cfg.loss == "cross_entropy" and not mixed:
            return self.task.loss(logits, y, weights, cfg.label_smoothing)
        target = y if mixed else dense_targets(self.task, y, cfg.label_smoothing)
        if cfg.loss == "focal":
            return focal_loss(self.task, logits, target, cfg.focal_gamma, weights)
        return soft_cross_entropy(self.task, logits, target, weights)
