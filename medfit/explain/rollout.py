"""Attention rollout (Abnar & Zuidema 2020) for timm ViTs, with fused attention switched off for the pass."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from medfit.errors import ConfigError
from medfit.explain.cam import token_grid, vit_trunk
from medfit.models.vitdet import WindowedBlock, window_attention_to_grid


@contextmanager
def unfused_attention(model: nn.Module):
    """Make timm attention modules compute explicit softmax weights (restores ``fused_attn`` afterwards)."""
    saved = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    try:
        for m, _ in saved:
            m.fused_attn = False
        yield
    finally:
        for m, flag in saved:
            m.fused_attn = flag


def attention_maps(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Per block, the attention weights (B, heads, N, N) of one forward pass, via timm's AttentionExtract hooks."""
    from timm.utils import AttentionExtract

    model = model.eval()
    with unfused_attention(model), torch.no_grad():
        try:
            extractor = AttentionExtract(model, method="hook")  # hooks on every '*attn_drop' (input = softmax weights)
        except RuntimeError as exc:
            raise ConfigError(f"attention rollout needs a timm ViT with attention blocks ({exc})") from None
        out = extractor(images)
        if hasattr(extractor.hooks, "_handles"):
            for h in extractor.hooks._handles:
                h.remove()
    return [v for v in out.values()]


def rollout_from_attentions(attentions: list[np.ndarray], head_fusion: str = "mean", residual: float = 0.5) -> np.ndarray:
    """Rolled-out attention (B, N, N): per layer fuse heads, mix in the identity (residual path), renormalise, multiply."""
    result = None
    for a in attentions:
        a = np.asarray(a, dtype=np.float64)
        fused = a.max(axis=1) if head_fusion == "max" else a.mean(axis=1)
        n = fused.shape[-1]
        fused = residual * np.eye(n) + (1 - residual) * fused
        fused = fused / fused.sum(axis=-1, keepdims=True)
        result = fused if result is None else fused @ result
    return result


def attention_rollout(model: nn.Module, images: torch.Tensor, head_fusion: str = "mean") -> np.ndarray:
    """Maps (B, H, W) in [0, 1] at input size: the class token's rolled-out attention to the patches."""
    inner = vit_trunk(model)
    if inner is None:
        raise ConfigError("attention rollout needs a ViT (a model with patch_embed and attention blocks); use gradcam")
    atts = [a.float().numpy() for a in attention_maps(model, images)]
    if not atts:
        raise ConfigError("no attention weights captured; is this a timm ViT?")
    prefix = int(getattr(inner, "num_prefix_tokens", 1))
    h, w = token_grid(model, images)  # the trunk's own grid (a CLIP classifier resizes its input first)
    blocks = list(inner.blocks)  # ViTDet windowed blocks: their window attention spread over the whole grid
    atts = [window_attention_to_grid(a, len(images), h, blocks[i].window_size, prefix)
            if i < len(blocks) and isinstance(blocks[i], WindowedBlock) else a for i, a in enumerate(atts)]
    roll = rollout_from_attentions(atts, head_fusion)
    # with a class token, its row says where the prediction reads from; without one, average every token's row
    row = roll[:, 0, prefix:] if prefix else roll[:, :, :].mean(axis=1)
    maps = torch.from_numpy(row.reshape(len(images), 1, h, w)).float()
    maps = torch.nn.functional.interpolate(maps, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
    maps = maps[:, 0].numpy()
    lo = maps.reshape(len(maps), -1).min(1)[:, None, None]
    hi = maps.reshape(len(maps), -1).max(1)[:, None, None]
    return ((maps - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)
