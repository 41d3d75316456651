"""timm backbones by name, with pretrained weights read from a local file through timm's own loader."""
from __future__ import annotations

from pathlib import Path

import timm
import torch

from medfit.config import ModelConfig
from medfit.errors import WeightsError

# The backbones the studies compared (any other timm name works too).
ZOO = {
    "resnet18": "resnet18", "resnet50": "resnet50",
    "convnext": "convnext_tiny", "efficientnetv2": "efficientnetv2_s", "mobilenetv3": "mobilenetv3_large_100",
    "vit_tiny": "vit_tiny_patch16_224", "vit_small": "vit_small_patch16_224", "vit_base": "vit_base_patch16_224",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def timm_name(name: str) -> str:
    """The timm model name for a zoo alias (or the name itself)."""
    return ZOO.get(name, name)


def resolve_weight_file(path: str, name: str) -> Path:
    """The weight file for ``model.pretrained``: a file, or a folder holding model.safetensors/pytorch_model.bin."""
    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in WEIGHT_FILES:
            if (p / candidate).is_file():
                return p / candidate
        raise WeightsError(f"{p}: folder has no {' or '.join(WEIGHT_FILES)}; put the timm weights of {name!r} there "
                           f"(e.g. download hf.co/timm/{name} on a connected machine)")
    if not p.is_file():
        raise WeightsError(f"{p}: pretrained weight file for {name!r} not found; download the timm/Hugging Face weights "
                           f"(e.g. hf.co/timm/{name}, model.safetensors) on a connected machine, copy the file here and "
                           f"point model.pretrained at it (or set model.pretrained: '' for random init)")
    return p


def create_backbone(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> torch.nn.Module:
    """A timm model with ``num_outputs`` logits; ``cfg.pretrained`` weights adapted (first conv, head, pos-embed) by timm."""
    name = timm_name(cfg.name)
    kwargs = dict(in_chans=cfg.in_chans, num_classes=num_outputs, drop_rate=cfg.drop_rate, **cfg.kwargs)
    if cfg.pretrained and load_pretrained:
        file = resolve_weight_file(cfg.pretrained, name)
        try:
            # timm's loader sums RGB first-conv weights for in_chans=1, drops a mismatched head, resamples pos-embed.
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(file), source=""),
                                     **kwargs)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise WeightsError(f"{file}: weights do not fit {name!r} ({first[:300]}); use the weight file of this "
                               f"exact architecture") from None
    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as exc:
        raise WeightsError(f"model.name {cfg.name!r}: timm cannot build it ({exc}); see timm.list_models()") from None
