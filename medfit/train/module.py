"""The LightningModule that trains any medfit classifier (binary, multiclass, multilabel)."""
from __future__ import annotations

import lightning as L
import torch

from medfit.config import TrainConfig
from medfit.models.covariates import call_model
from medfit.models.finetune import param_groups
from medfit.task import Task
from medfit.train.augment import TrainTransform
from medfit.train.losses import TrainingLoss
from medfit.train.optim import layer_decay_groups, lightning_optimizers


class ClassifierModule(L.LightningModule):
    """Wraps a network with its loss, batch transform (augmentation, mixing), optimiser, schedule and validation AUC."""

    def __init__(self, model: torch.nn.Module, task: Task, train_cfg: TrainConfig, class_weights: torch.Tensor | None,
                 steps_per_epoch: int, seed: int = 0):
        super().__init__()
        self.model, self.task, self.cfg, self.seed = model, task, train_cfg, seed
        self.steps_per_epoch = steps_per_epoch
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0), persistent=False)
        self.transform, self.criterion = TrainTransform(train_cfg, task), TrainingLoss(task, train_cfg)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x) -> torch.Tensor:
        return call_model(self.model, x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, mixed: bool = False) -> torch.Tensor:
        """The configured loss of the task (``mixed``: dense mixed targets), class-weighted when configured."""
        weights = self.class_weights if self.class_weights.numel() else None
        return self.criterion(logits, y, weights, mixed)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        x, covariates = (x[0], list(x[1:])) if isinstance(x, (list, tuple)) else (x, [])  # only the image transforms
        # Every step's randomness (augmentation, mixing, dropout, drop-path) comes from (seed, epoch, step), so a run
        # resumed from a checkpoint repeats an uninterrupted one exactly, whatever else consumed the global RNG.
        step_seed = self.seed * 7919 + self.current_epoch * 100003 + batch_idx
        torch.manual_seed(step_seed)
        x, y, mixed = self.transform(x, y, self.current_epoch, step_seed)
        loss = self.loss(self([x, *covariates] if covariates else x), y, mixed)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), prog_bar=False, on_step=False, on_epoch=True, batch_size=len(y))
        self._val_outputs.append((self.task.probabilities(logits).detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        p = torch.cat([o[0] for o in self._val_outputs])
        y = torch.cat([o[1] for o in self._val_outputs])
        self._val_outputs.clear()
        if self.trainer.world_size > 1:  # every rank scores the whole validation set
            p, y = self.all_gather(p).flatten(0, 1), self.all_gather(y).flatten(0, 1)
        auc = self.task.auc(y.cpu().numpy(), p.float().cpu().numpy())
        # NaN when undefined (never 0.0): checkpointing ranks NaN last, early stopping stops on it
        self.log("val_auc", auc, prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        c = self.cfg
        total = self.steps_per_epoch * c.epochs
        groups = layer_decay_groups(self.model, c.optim, c.layer_decay) if c.layer_decay \
            else param_groups(self.model, c.optim)
        hold = ((c.epochs - c.swa_epochs) * self.steps_per_epoch, c.swa_lr / c.optim.lr) if c.swa_epochs and c.swa_lr \
            else None
        return lightning_optimizers(groups, c.optim, self.steps_per_epoch, total, hold=hold)
