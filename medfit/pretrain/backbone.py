"""The ViT that pretraining trains: a timm VisionTransformer, optionally with ViTDet windowed attention and fixed
(log-spaced) sinusoidal position embeddings. Its state_dict stays a plain timm one, so ``medfit train`` loads it."""
from __future__ import annotations

import math

import numpy as np
import timm
import torch
from lightly.models.utils import get_2d_sine_cosine_positional_embedding
from timm.models.vision_transformer import VisionTransformer

from medfit.config import ModelConfig, PretrainConfig
from medfit.errors import ConfigError
from medfit.models.backbones import timm_name
from medfit.models.vitdet import (
    WindowedBlock,
    apply_window_attention,
    global_block_indices,
    has_windowed_blocks,
)

__all__ = ["WindowedBlock", "apply_window_attention", "create_vit", "global_block_indices", "has_windowed_blocks",
           "init_pos_embed", "log_sincos_pos_embed", "patch_size"]


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
