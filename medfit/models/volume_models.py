"""Networks for studies: 2.5D (neighbour slices as channels), slice-set MIL (gated attention), 3D CNNs (MONAI)."""
from __future__ import annotations

import torch
from torch import nn

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
        self.medfit_head = ["attention_v", "attention_u", "attention_w", "head"] + [
            f"encoder.{p}" for p in getattr(encoder, "medfit_head", [])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        h = self.encoder(x.flatten(0, 1)).view(b, s, -1)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        a = scores.softmax(dim=1)  # (B, S, 1)
        self.last_attention = a[..., 0].detach()
        return self.head((a * h).sum(dim=1))


def build_3d(name: str, in_channels: int, num_outputs: int, kwargs: dict | None = None) -> nn.Module:
    """A MONAI 3D network by name: resnet10/18/34/50 (MONAI ResNet) or densenet121/169/201 (MONAI DenseNet)."""
    from monai.networks import nets  # heavy (~10 s to import): only 3D runs need it

    kwargs = dict(kwargs or {})
    key = name.lower()
    if key.startswith("resnet") and hasattr(nets, key):
        return getattr(nets, key)(spatial_dims=3, n_input_channels=in_channels, num_classes=num_outputs, **kwargs)
    dense = {"densenet121": nets.DenseNet121, "densenet169": nets.DenseNet169, "densenet201": nets.DenseNet201}
    if key in dense:
        return dense[key](spatial_dims=3, in_channels=in_channels, out_channels=num_outputs, **kwargs)
    raise ConfigError(f"model.name {name!r}: expected a MONAI 3D network: resnet10/18/34/50 or densenet121/169/201")
