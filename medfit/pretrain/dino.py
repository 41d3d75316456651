"""DINO-style self-distillation (Caron et al. 2021): a student matches an EMA teacher across multi-crop views.

Head, loss (with centring and teacher temperature) and the EMA update are lightly's; the crops are batched views.
Known limit: in short runs on small grey-scale images (tens of steps, 28 px PneumoniaMNIST, 2-block ViT) the loss
drifts to log(out_dim), i.e. uniform teacher and student outputs: at timm's init the class token hardly depends on the
image, so centring removes the teacher's only signal. Cycle it with MAE and use full-length schedules.
"""
from __future__ import annotations

import copy

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead, MaskedVisionTransformerTIMM
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from medfit.config import PretrainConfig
from medfit.pretrain.backbone import patch_size
from medfit.pretrain.views import augmented_crops, whole_patches


class DINOObjective(nn.Module):
    """Student head, EMA teacher (encoder + head) and the DINO cross-entropy over 2 global + N local crops."""

    def __init__(self, encoder: MaskedVisionTransformerTIMM, cfg: PretrainConfig, image_size: int):
        super().__init__()
        vit = encoder.vit
        dims = (vit.embed_dim, cfg.dino_hidden_dim, cfg.dino_bottleneck_dim, cfg.dino_out_dim)
        self.head = DINOProjectionHead(*dims, batch_norm=False)
        self.teacher_encoder = copy.deepcopy(encoder)
        self.teacher_head = DINOProjectionHead(*dims, batch_norm=False)  # weight_norm layers cannot be deep-copied
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_encoder)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(cfg.dino_out_dim, warmup_teacher_temp=cfg.warmup_teacher_temp,
                                  teacher_temp=cfg.teacher_temp,
                                  warmup_teacher_temp_epochs=max(1, cfg.warmup_teacher_temp_epochs),
                                  student_temp=cfg.student_temp)
        p = patch_size(vit)
        self.global_size = whole_patches(image_size, p)
        self.local_size = whole_patches(cfg.local_crop_size or image_size // 2, p)
        self.global_scale, self.local_scale = tuple(cfg.global_crop_scale), tuple(cfg.local_crop_scale)
        self.local_crops = cfg.local_crops

    def views(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Two global crops, then the local crops."""
        out = [augmented_crops(images, self.global_size, self.global_scale, blur_p) for blur_p in (1.0, 0.1)]
        return out + [augmented_crops(images, self.local_size, self.local_scale, 0.5) for _ in range(self.local_crops)]

    def embed(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor) -> torch.Tensor:
        """The student's projection-head output for a batch of views."""
        return self.head(encoder(images))

    def loss(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor, epoch: int = 0, **_) -> torch.Tensor:
        """Cross-entropy between the teacher on the global views and the student on all views."""
        views = self.views(images)
        with torch.no_grad():
            self.teacher_encoder.eval()
            teacher_out = [self.teacher_head(self.teacher_encoder(v)) for v in views[:2]]
        student_out = [self.embed(encoder, v) for v in views]
        return self.criterion(teacher_out, student_out, epoch=epoch)

    @torch.no_grad()
    def update_teacher(self, encoder: MaskedVisionTransformerTIMM, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student, for the encoder and the head."""
        update_momentum(encoder, self.teacher_encoder, momentum)
        update_momentum(self.head, self.teacher_head, momentum)
