"""The LightningModule of ``medfit pretrain``: one shared ViT encoder, several objectives cycled batch by batch."""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightly.models.modules import MaskedVisionTransformerTIMM
from lightly.utils.scheduler import cosine_schedule
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from medfit.config import PretrainConfig
from medfit.errors import ConfigError
from medfit.pretrain.boxloc import BoxLocObjective
from medfit.pretrain.dino import DINOObjective
from medfit.pretrain.mae import MAEObjective
from medfit.train.optim import lightning_optimizers

OBJECTIVES = ("mae", "dino", "boxloc")


def build_objective(name: str, encoder: MaskedVisionTransformerTIMM, cfg: PretrainConfig, image_size: int) -> nn.Module:
    """The objective module called ``name`` (mae, dino or boxloc)."""
    if name == "mae":
        return MAEObjective(encoder, cfg)
    if name == "dino":
        return DINOObjective(encoder, cfg, image_size)
    if name == "boxloc":
        return BoxLocObjective(encoder, cfg, image_size)
    raise ConfigError(f"pretrain.objectives: unknown objective {name!r} (choose from {', '.join(OBJECTIVES)})")


def wrap_encoder(vit: VisionTransformer) -> MaskedVisionTransformerTIMM:
    """lightly's masking wrapper around the timm ViT, keeping timm's weights and position embedding as they are."""
    return MaskedVisionTransformerTIMM(vit, weight_initialization="skip", pos_embed_initialization="skip")


class PretrainModule(L.LightningModule):
    """Shared encoder + objectives; step k trains ``objectives[k % n]``; the DINO teacher follows by EMA."""

    def __init__(self, vit: VisionTransformer, cfg: PretrainConfig, image_size: int, steps_per_epoch: int,
                 seed: int = 0):
        super().__init__()
        if not cfg.objectives:
            raise ConfigError("pretrain.objectives: empty; list at least one of mae, dino, boxloc")
        self.cfg, self.seed, self.steps_per_epoch = cfg, seed, steps_per_epoch
        self.encoder = wrap_encoder(vit)
        self.cycle = list(cfg.objectives)
        self.objectives = nn.ModuleDict({name: build_objective(name, self.encoder, cfg, image_size)
                                         for name in dict.fromkeys(self.cycle)})
        self.last_objective = ""

    @property
    def vit(self) -> VisionTransformer:
        """The timm ViT being pretrained."""
        return self.encoder.vit

    def total_steps(self) -> int:
        """Optimiser steps of the whole run (for the LR and EMA schedules)."""
        if self.cfg.max_steps > 0:
            return self.cfg.max_steps
        return max(1, self.cfg.epochs * self.steps_per_epoch)

    def objective_at(self, step: int) -> str:
        """The objective trained at optimiser step ``step``."""
        return self.cycle[step % len(self.cycle)]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0]
        step = self.global_step
        # crops, masks and boxes come from (seed, step): a resumed run repeats an uninterrupted one
        torch.manual_seed(self.seed * 7919 + step)
        np.random.seed((self.seed * 7919 + step) % 2**32)
        name = self.objective_at(step)
        loss = self.objectives[name].loss(self.encoder, images, epoch=self.current_epoch)
        self.last_objective = name
        self.log(f"{name}_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.last_objective == "dino":
            m = cosine_schedule(self.global_step, self.total_steps(), self.cfg.teacher_momentum, 1.0)
            self.objectives["dino"].update_teacher(self.encoder, m)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2]},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]  # biases, norms, tokens
        return lightning_optimizers(groups, self.cfg.optim, self.steps_per_epoch, self.total_steps(),
                                    max_warmup_share=0.5)
