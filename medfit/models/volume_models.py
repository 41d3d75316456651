"""Networks for studies: 2.5D (neighbour slices as channels), slice-set MIL (gated attention), 3D CNNs (MONAI)."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from medfit.config import ExperimentConfig, ModelConfig
from medfit.errors import ConfigError


class GatedAttentionMIL(nn.Module):
    """A shared 2D encoder over every slice, gated-attention pooling (Ilse et al. 2018), one linear head.

    Input (B, S, C, H, W); ``last_attention`` keeps the (B, S) slice weights of the latest forward pass.
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, num_outputs: int, hidden: int = 128):
        super().__init__()
        self.encoder = encoder
        self.attention_v = nn.Linear(feature_dim, hidden)
        self.attention_u = nn.Linear(feature_dim, hidden)
        self.attention_w = nn.Linear(hidden, 1)
        self.head = nn.Linear(feature_dim, num_outputs)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        h = self.encoder(x.flatten(0, 1)).view(b, s, -1)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        a = scores.softmax(dim=1)  # (B, S, 1)
        self.last_attention = a[..., 0].detach()
        return self.head((a * h).sum(dim=1))


def build_mil(model_cfg: ModelConfig, num_outputs: int, hidden: int, load_pretrained: bool = True) -> nn.Module:
    """Slice-set MIL: the config's timm backbone (pooled features, no head) shared over slices + gated attention."""
    from medfit.models.backbones import create_backbone
    from medfit.models.finetune import apply_finetune

    encoder, _ = create_backbone(model_cfg, num_outputs, load_pretrained)
    encoder.reset_classifier(0)
    if model_cfg.finetune != "full":
        encoder = apply_finetune(encoder, dataclasses.replace(model_cfg, finetune=model_cfg.finetune), [])
    dim = getattr(encoder, "num_features", None) or encoder.base_model.model.num_features
    return GatedAttentionMIL(encoder, int(dim), num_outputs, hidden)


def build_3d(name: str, in_channels: int, num_outputs: int, kwargs: dict | None = None) -> nn.Module:
    """A MONAI 3D network by name: resnet10/18/34/50 (MONAI ResNet) or densenet121/169/201 (MONAI DenseNet)."""
    from monai.networks import nets

    kwargs = dict(kwargs or {})
    key = name.lower()
    if key.startswith("resnet") and hasattr(nets, key):
        return getattr(nets, key)(spatial_dims=3, n_input_channels=in_channels, num_classes=num_outputs, **kwargs)
    dense = {"densenet121": nets.DenseNet121, "densenet169": nets.DenseNet169, "densenet201": nets.DenseNet201}
    if key in dense:
        return dense[key](spatial_dims=3, in_channels=in_channels, out_channels=num_outputs, **kwargs)
    raise ConfigError(f"volume.net3d {name!r}: expected a MONAI 3D network: resnet10/18/34/50 or densenet121/169/201")


def build_volume_model(cfg: ExperimentConfig, num_outputs: int, load_pretrained: bool = True) -> nn.Module:
    """The network for ``cfg.volume.mode``: logits (B, num_outputs) from that mode's input shape."""
    from medfit.models import build_model

    v = cfg.volume
    if v.mode == "slice":
        return build_model(cfg.model, num_outputs, load_pretrained)
    if v.mode == "2.5d":
        return build_model(dataclasses.replace(cfg.model, in_chans=2 * v.neighbours + 1), num_outputs, load_pretrained)
    if v.mode == "slice_set":
        return build_mil(dataclasses.replace(cfg.model, in_chans=1), num_outputs, v.mil_hidden, load_pretrained)
    if v.mode == "3d":
        return build_3d(v.net3d, 1, num_outputs, cfg.model.kwargs)
    raise ConfigError(f"volume.mode {v.mode!r}: expected slice, 2.5d, slice_set or 3d")
