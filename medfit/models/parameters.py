"""Counting a network's parameters (trainable and total) the way the fine-tuning methods define them."""
from __future__ import annotations

import torch


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
