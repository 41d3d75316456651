"""The ViT that pretraining trains: a timm VisionTransformer, optionally with ViTDet windowed attention and fixed
(log-spaced) sinusoidal position embeddings. Its state_dict stays a plain timm one, so ``medfit train`` loads it."""
from __future__ import annotations

import math

import numpy as np
import timm
import torch
from lightly.models.utils import get_2d_sine_cosine_positional_embedding
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from medfit.config import ModelConfig, PretrainConfig
from medfit.errors import ConfigError
from medfit.models.backbones import timm_name


def log_sincos_pos_embed(grid_size: int, dim: int, num_prefix_tokens: int = 1, max_freq: float = 0.0) -> torch.Tensor:
    """2D sinusoidal position embedding ``(1, prefix + grid^2, dim)`` with frequencies log-spaced from 1 to ``max_freq``.

    Positions are patch centres scaled to [-1, 1]; each axis gets dim/4 sine and dim/4 cosine channels with
    frequencies ``pi * 2**linspace(0, log2(max_freq))`` (default max_freq: grid/2, the finest the grid resolves).
    Prefix (class) tokens get zeros.
    """
    if dim % 4:
        raise ConfigError(f"pretrain.pos_embed log_sincos: embed_dim {dim} must be divisible by 4")
    n = dim // 4
    top = max_freq or max(grid_size / 2, 1.0)
    freqs = math.pi * torch.logspace(0.0, math.log2(top), n, base=2.0, dtype=torch.float64)
    centres = (torch.arange(grid_size, dtype=torch.float64) + 0.5) / grid_size * 2 - 1
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    parts = []
    for coord in (xx.reshape(-1), yy.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1).float()
    return torch.cat([torch.zeros(num_prefix_tokens, dim), emb])[None]


def init_pos_embed(vit: VisionTransformer, kind: str) -> None:
    """Set the ViT's position embedding: keep timm's learned init, or fill and freeze a (log-spaced) sincos table."""
    if kind == "learned":
        return
    grid = vit.patch_embed.grid_size[0]
    prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
    dim = vit.pos_embed.shape[-1]
    if kind == "sincos":
        table = torch.from_numpy(np.asarray(get_2d_sine_cosine_positional_embedding(dim, grid, num_prefix_tokens=prefix)))
        table = table.float()[None]
    elif kind == "log_sincos":
        table = log_sincos_pos_embed(grid, dim, prefix)
    else:
        raise ConfigError(f"pretrain.pos_embed: unknown kind {kind!r} (learned, sincos, log_sincos)")
    with torch.no_grad():
        vit.pos_embed.copy_(table)
    vit.pos_embed.requires_grad_(False)  # fixed while pretraining (as in MAE); fine-tuning may train it


class WindowedBlock(nn.Module):
    """A timm ViT block whose self-attention runs inside non-overlapping windows of the patch grid (ViTDet).

    It holds the original block's children under the same names, so the state_dict keys do not change. The grid is
    zero-padded to whole windows; prefix (class) tokens join every window and leave as their mean over windows.
    """

    def __init__(self, block: nn.Module, window_size: int, num_prefix_tokens: int):
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        self.window_size, self.num_prefix_tokens = window_size, num_prefix_tokens

    def windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention of the normalised tokens ``(B, prefix + g*g, D)`` within windows."""
        b, n, d = x.shape
        p, w = self.num_prefix_tokens, self.window_size
        g = math.isqrt(n - p)
        if g * g != n - p:
            raise ValueError(f"windowed attention needs a square patch grid, got {n - p} patch tokens")
        prefix, grid = x[:, :p], x[:, p:].reshape(b, g, g, d)
        pad = (-g) % w
        grid = nn.functional.pad(grid, (0, 0, 0, pad, 0, pad))
        gp = g + pad
        nw = (gp // w) ** 2
        windows = grid.reshape(b, gp // w, w, gp // w, w, d).permute(0, 1, 3, 2, 4, 5).reshape(b * nw, w * w, d)
        tokens = torch.cat([prefix.repeat_interleave(nw, dim=0), windows], dim=1)
        out = self.attn(tokens)
        out_prefix = out[:, :p].reshape(b, nw, p, d).mean(dim=1)
        out_grid = out[:, p:].reshape(b, gp // w, gp // w, w, w, d).permute(0, 1, 3, 2, 4, 5).reshape(b, gp, gp, d)
        return torch.cat([out_prefix, out_grid[:, :g, :g].reshape(b, g * g, d)], dim=1)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.windowed_attention(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def global_block_indices(depth: int, global_every: int) -> list[int]:
    """Blocks that keep global attention: every ``global_every``-th, counted back from the last (always global)."""
    step = max(1, global_every)
    return [i for i in range(depth) if (depth - 1 - i) % step == 0]


def apply_window_attention(vit: VisionTransformer, window_size: int, global_every: int) -> VisionTransformer:
    """Turn all but the global blocks of a timm ViT into windowed-attention blocks (in place; weights unchanged)."""
    keep = set(global_block_indices(len(vit.blocks), global_every))
    for i, block in enumerate(vit.blocks):
        if i not in keep and not isinstance(block, WindowedBlock):
            vit.blocks[i] = WindowedBlock(block, window_size, vit.num_prefix_tokens)
    return vit


def has_windowed_blocks(vit: VisionTransformer) -> bool:
    """Whether any block attends within windows (then MAE keeps mask tokens instead of dropping them)."""
    return any(isinstance(b, WindowedBlock) for b in vit.blocks)


def create_vit(model_cfg: ModelConfig, pre_cfg: PretrainConfig, image_size: int) -> VisionTransformer:
    """The headless timm ViT of ``model.name`` (with ``model.kwargs``) at ``image_size``, set up for pretraining."""
    name = timm_name(model_cfg.name)
    kwargs = dict(model_cfg.kwargs)
    kwargs.setdefault("img_size", image_size)
    try:
        vit = timm.create_model(name, in_chans=model_cfg.in_chans, num_classes=0, dynamic_img_size=True, **kwargs)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"model.name {model_cfg.name!r}: timm cannot build it for pretraining ({exc}); pretraining "
                          f"needs a timm VisionTransformer (e.g. vit_tiny, vit_small, vit_base)") from None
    if not isinstance(vit, VisionTransformer):
        raise ConfigError(f"model.name {model_cfg.name!r}: pretraining needs a timm VisionTransformer (e.g. vit_tiny, "
                          f"vit_small, vit_base), got {type(vit).__name__}")
    init_pos_embed(vit, pre_cfg.pos_embed)
    if pre_cfg.window_size > 0:
        apply_window_attention(vit, pre_cfg.window_size, pre_cfg.global_every)
    return vit


def patch_size(vit: VisionTransformer) -> int:
    """The ViT's (square) patch size in pixels."""
    return int(vit.patch_embed.patch_size[0])
