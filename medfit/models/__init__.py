"""Models: timm backbones, CBAM, feature fusion, fine-tuning methods (full / linear probe / LoRA), open_clip, export."""
from __future__ import annotations

import torch

from medfit.config import ModelConfig
from medfit.models.backbones import create_backbone


def build_model(model_cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> torch.nn.Module:
    """The network a config asks for, returning logits ``(B, num_outputs)``.

    ``load_pretrained=False`` skips reading ``model.pretrained`` (use it when a run checkpoint is loaded next).
    """
    return create_backbone(model_cfg, num_outputs, load_pretrained)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


__all__ = ["build_model", "count_parameters"]
