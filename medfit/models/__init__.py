"""Models: timm backbones, CBAM, feature fusion, fine-tuning methods (full / linear probe / LoRA), open_clip, export."""
from __future__ import annotations

import torch

from medfit.config import ModelConfig
from medfit.models.backbones import create_backbone
from medfit.models.finetune import apply_finetune, attach_param_groups

CLIP_NAMES = ("open_clip", "biomedclip")


def build_model(model_cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> torch.nn.Module:
    """The network a config asks for, returning logits ``(B, num_outputs)``.

    ``load_pretrained=False`` builds the same architecture without reading weight files or member runs' checkpoints
    (use it when a run checkpoint is loaded next).
    """
    cfg = model_cfg
    extra: list[str] = []
    if cfg.name == "fusion":
        from medfit.models.fusion import build_fusion

        model = build_fusion(cfg, num_outputs, load_pretrained)
    elif cfg.name in CLIP_NAMES:
        from medfit.models.clip import build_clip_classifier

        model = build_clip_classifier(cfg, num_outputs, load_pretrained)
    elif cfg.name == "clip_zero_shot":
        from medfit.models.zeroshot import build_zero_shot_skeleton

        return build_zero_shot_skeleton(cfg, num_outputs, load_pretrained)
    else:
        model, _ = create_backbone(cfg, num_outputs, load_pretrained)  # the load report: TODO(lead) train_info.json
    if cfg.cbam:
        from medfit.models.cbam import insert_cbam

        extra = insert_cbam(model, cfg.cbam, cfg.in_chans, cfg.cbam_reduction)
    model = apply_finetune(model, cfg, extra)
    return attach_param_groups(model, cfg)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts (LoRA's frozen copies of saved modules are not counted twice)."""
    trainable = total = 0
    for name, p in model.named_parameters():
        if ".original_module." in name:  # peft keeps the pre-training head beside its trained copy
            continue
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    # Frozen BatchNorm keeps its affine weights as buffers; they are still the network's (frozen) parameters.
    total += sum(m.weight.numel() + m.bias.numel() for m in model.modules()
                 if type(m).__name__.startswith("FrozenBatchNorm"))  # torchvision's and timm's (with activation)
    return trainable, total


__all__ = ["build_model", "count_parameters"]
