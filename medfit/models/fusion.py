"""Feature-fusion ensemble: several backbones' pooled features, projected, concatenated, normalised, MLP head."""
from __future__ import annotations

import torch
from torch import nn


class FusionEnsemble(nn.Module):
    """Members -> pooled features -> Linear to ``dim`` each -> concat -> LayerNorm -> dropout -> MLP -> logits."""

    def __init__(self, members: list[nn.Module], widths: list[int], num_outputs: int, dim: int = 768,
                 hidden: int = 256, dropout: float = 0.3):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.projections = nn.ModuleList(nn.Linear(w, dim) for w in widths)
        self.norm = nn.LayerNorm(dim * len(members))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(dim * len(members), hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_outputs))
        self.medfit_head = ["projections", "norm", "head"]

    def fused_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised concatenation of every member's projected features, ``(B, dim * members)``."""
        return self.norm(torch.cat([proj(m(x)) for m, proj in zip(self.members, self.projections)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.fused_features(x)))
