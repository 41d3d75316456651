"""The LightningModule that trains any medfit classifier (binary, multiclass, multilabel)."""
from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from medfit.config import TrainConfig
from medfit.data.augment import BatchAugment


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Class probabilities from logits: sigmoid for binary/multilabel, softmax for multiclass."""
    if task == "multiclass":
        return logits.softmax(dim=1)
    return torch.sigmoid(logits)


def auc_score(y: np.ndarray, p: np.ndarray, task: str) -> float:
    """ROC AUC (macro one-vs-rest for multiclass, macro over labels for multilabel); NaN when undefined."""
    try:
        if task == "binary":
            return float(roc_auc_score(y, p[:, 0] if p.ndim == 2 else p))
        if task == "multiclass":
            return float(roc_auc_score(y, p, multi_class="ovr", average="macro"))
        return float(roc_auc_score(y, p, average="macro"))
    except ValueError:
        return float("nan")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class ClassifierModule(L.LightningModule):
    """Wraps a network with its loss, augmentation, optimiser, schedule and validation AUC."""

    def __init__(self, model: torch.nn.Module, task: str, train_cfg: TrainConfig, class_weights: torch.Tensor | None,
                 steps_per_epoch: int, seed: int = 0):
        super().__init__()
        self.model, self.task, self.cfg, self.seed = model, task, train_cfg, seed
        self.steps_per_epoch = steps_per_epoch
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0), persistent=False)
        self.augment = BatchAugment(train_cfg.augment)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the task, class-weighted when configured."""
        weights = self.class_weights if self.class_weights.numel() else None
        if self.task == "multiclass":
            return F.cross_entropy(logits, y.long(), weight=weights, label_smoothing=self.cfg.label_smoothing)
        target = y.view_as(logits) if self.task == "binary" else y
        if self.cfg.label_smoothing:
            target = target * (1 - self.cfg.label_smoothing) + 0.5 * self.cfg.label_smoothing
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weights)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        # Every step's randomness (augmentation, dropout, drop-path) comes from (seed, epoch, step), so a run
        # resumed from a checkpoint repeats an uninterrupted one exactly, whatever else consumed the global RNG.
        step_seed = self.seed * 7919 + self.current_epoch * 100003 + batch_idx
        torch.manual_seed(step_seed)
        # Studies (B, S, C, H, W) / (B, C, D, H, W): one in-plane transform per study, the same on every slice.
        x = self.augment(x.flatten(1, -3), torch.Generator().manual_seed(step_seed)).view_as(x) if x.ndim == 5 \
            else self.augment(x, torch.Generator().manual_seed(step_seed))
        loss = self.loss(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), prog_bar=False, on_step=False, on_epoch=True, batch_size=len(x))
        self._val_outputs.append((probabilities(logits, self.task).detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        p = torch.cat([o[0] for o in self._val_outputs])
        y = torch.cat([o[1] for o in self._val_outputs])
        self._val_outputs.clear()
        if self.trainer.world_size > 1:  # every rank scores the whole validation set
            p, y = self.all_gather(p).flatten(0, 1), self.all_gather(y).flatten(0, 1)
        auc = auc_score(y.cpu().numpy(), p.float().cpu().numpy(), self.task)
        self.log("val_auc", auc if not math.isnan(auc) else 0.0, prog_bar=True, sync_dist=False)

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups (models may define ``param_groups(lr)`` for head/backbone learning rates)."""
        if hasattr(self.model, "param_groups"):
            return self.model.param_groups(self.cfg.lr)
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        cfg = self.cfg
        groups = self.parameter_groups()
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
        else:
            opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.scheduler == "none":
            return opt
        total = max(1, self.steps_per_epoch * cfg.epochs)
        warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup, total, cfg.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
