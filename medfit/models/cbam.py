"""CBAM (Woo et al. 2018): channel then spatial attention, inserted after named stages of a CNN."""
from __future__ import annotations

import torch
from timm.models._efficientnet_blocks import EdgeResidual
from timm.models.convnext import ConvNeXt
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.resnet import ResNet
from torch import nn

from medfit.errors import ConfigError


class ChannelAttention(nn.Module):
    """Channel weights from a shared MLP over average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """A spatial map from a 7x7 conv over the channel mean and max."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention followed by spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class WithCBAM(nn.Module):
    """A stage followed by CBAM on its output."""

    def __init__(self, stage: nn.Module, channels: int, reduction: int = 16):
        super().__init__()
        self.stage = stage
        self.cbam = CBAM(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbam(self.stage(x))


def default_cbam_positions(model: nn.Module) -> list[str]:
    """The studies' CBAM positions for a timm model: ConvNeXt after each stage, EfficientNetV2 after the
    fused-MBConv stages and after the last conv, MobileNetV3 after the last conv, ResNet after each layer."""
    if isinstance(model, ConvNeXt):
        return [f"stages.{i}" for i in range(len(model.stages))]
    if isinstance(model, EfficientNet):
        fused = [i for i, stage in enumerate(model.blocks) if any(isinstance(b, EdgeResidual) for b in stage)]
        between = [f"blocks.{fused[-1]}"] if fused and fused[-1] < len(model.blocks) - 1 else []
        return between + ["bn2"]  # bn2 = norm + activation right after conv_head, the last conv
    if isinstance(model, MobileNetV3):
        # conv_head runs on the pooled 1x1 map, so the last spatial conv is the final block.
        return [f"blocks.{len(model.blocks) - 1}"]
    if isinstance(model, ResNet):
        return ["layer1", "layer2", "layer3", "layer4"]
    raise ConfigError(f"model.cbam: no default CBAM positions for {type(model).__name__}; "
                      f"list module paths instead (e.g. model.cbam: [stages.0, stages.1])")


@torch.no_grad()
def _output_channels(model: nn.Module, paths: list[str], in_chans: int) -> dict[str, int]:
    """Channel count of each named module's output, from one small forward pass."""
    found: dict[str, int] = {}
    hooks = [model.get_submodule(p).register_forward_hook(
        lambda m, i, o, p=p: found.__setitem__(p, o.shape[1])) for p in paths]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_chans, 64, 64))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return found


def insert_cbam(model: nn.Module, positions: list[str], in_chans: int, reduction: int = 16) -> list[str]:
    """Wrap each named module (dotted path) so CBAM runs on its output; returns the new CBAM module paths."""
    if positions == ["default"]:
        positions = default_cbam_positions(model)
    for p in positions:
        try:
            model.get_submodule(p)
        except AttributeError:
            raise ConfigError(f"model.cbam: {type(model).__name__} has no module {p!r}") from None
    channels = _output_channels(model, positions, in_chans)
    for p in positions:
        parent_path, _, leaf = p.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, leaf, WithCBAM(parent.get_submodule(leaf), channels[p], reduction))
    return [f"{p}.cbam" for p in positions]
