"""Ordered slice aggregators for slice sets (``volume.aggregator: gru | transformer``): a shared 2D encoder embeds
every slice, and a bidirectional GRU or a small transformer with learned slice positions reads the embeddings in
slice order (the c-spine CT study's "future work"; the gated-attention MIL beside it ignores the order)."""
from __future__ import annotations

import torch
from torch import nn

from medfit.errors import ConfigError

MAX_SLICES = 512  # learned positions of the transformer aggregator


class SliceSequence(nn.Module):
    """Input (B, S, C, H, W) -> encoder per slice (B, S, F) -> GRU or transformer over S -> linear head."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_outputs: int, kind: str = "gru", hidden: int = 128,
                 layers: int = 1, heads: int = 4):
        super().__init__()
        if kind not in ("gru", "transformer"):
            raise ConfigError(f"volume.aggregator {kind!r}: an ordered aggregator is gru or transformer")
        self.encoder, self.kind = encoder, kind
        self.project = nn.Linear(feature_dim, hidden)
        if kind == "gru":
            self.sequence = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True)
            width = 2 * hidden
        else:
            if hidden % heads:
                raise ConfigError(f"volume.mil_hidden {hidden}: the transformer aggregator needs a multiple of {heads}")
            self.positions = nn.Parameter(torch.zeros(1, MAX_SLICES, hidden))
            nn.init.trunc_normal_(self.positions, std=0.02)
            block = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.sequence = nn.TransformerEncoder(block, num_layers=max(1, layers), enable_nested_tensor=False)
            width = hidden
        self.head = nn.Linear(width, num_outputs)
        self.medfit_head = ["project", "sequence", "head"] + (["positions"] if kind == "transformer" else []) + [
            f"encoder.{p}" for p in getattr(encoder, "medfit_head", [])]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, C, H, W) -> (B, S, hidden): every slice through the shared encoder, then projected."""
        b, s = x.shape[:2]
        return self.project(self.encoder(x.flatten(0, 1)).view(b, s, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        if self.kind == "gru":
            _, last = self.sequence(h)  # (layers * 2, B, hidden): the last layer's forward and backward states
            return self.head(torch.cat([last[-2], last[-1]], dim=1))
        if h.shape[1] > MAX_SLICES:
            raise ConfigError(f"volume.slices {h.shape[1]}: the transformer aggregator takes at most {MAX_SLICES}")
        return self.head(self.sequence(h + self.positions[:, : h.shape[1]]).mean(dim=1))
