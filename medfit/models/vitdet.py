"""ViTDet windowed attention (Li et al. 2022) for timm ViTs: all but every few blocks attend within non-overlapping
windows of the patch grid. Pretraining builds it (medfit.pretrain) and fine-tuning rebuilds it (``model.window_size``)
so a windowed encoder keeps its layout; the blocks keep timm's state_dict keys either way.

timm has no windowed-attention wrapper for its VisionTransformer blocks (its ViTDet-style windows live only inside
the SAM / Hiera / EVA architectures), so this one is written here.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from medfit.errors import ConfigError
from medfit.run_folder import RunFolder

log = logging.getLogger(__name__)


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


def windowed_vit(model: nn.Module, window_size: int, global_every: int, where: str = "model.window_size") -> nn.Module:
    """``model`` with ViTDet windows, after checking that it is a timm VisionTransformer with a square patch grid."""
    if not isinstance(model, VisionTransformer):
        raise ConfigError(f"{where} {window_size}: windowed attention needs a timm VisionTransformer "
                          f"(e.g. vit_tiny, vit_small), got {type(model).__name__}; set it to 0")
    return apply_window_attention(model, window_size, global_every)


def pretrained_layout(source: str) -> tuple[int, int] | None:
    """(window_size, global_every) of a medfit pretraining run (its folder or its weight file), else None."""
    path = Path(source).expanduser()
    run = RunFolder(path.parent if path.is_file() else path)
    if not (run.path.is_dir() and run.is_run and run.has("pretrain_metrics")):
        return None
    pre = run.read_config().pretrain
    return pre.window_size, pre.global_every


def layout_note(source: str, window_size: int, global_every: int) -> str:
    """A warning line when the weights come from a pretraining run whose attention layout differs; else ''."""
    layout = pretrained_layout(source) if source else None
    if layout is None or layout == (window_size, global_every) or not (layout[0] or window_size):
        return ""
    was = f"windows of {layout[0]} patches and a global block every {layout[1]}" if layout[0] else "global attention"
    now = f"windows of {window_size}" if window_size else "global attention in every block"
    note = (f"{source}: pretrained with {was}; fine-tuning with {now} (set model.window_size: {layout[0]} and "
            f"model.global_every: {layout[1]} to keep the pretrained layout)")
    log.warning(note)
    return note


def window_attention_to_grid(att: np.ndarray, batch: int, grid: int, window: int, prefix: int) -> np.ndarray:
    """A windowed block's attention weights (B*windows, heads, p + w*w, p + w*w) as one (B, heads, p + g*g, p + g*g)
    matrix over the whole grid: each patch attends within its window; the prefix tokens' rows are the mean over
    windows (as the block outputs them). Weights on the zero padding of partial windows are left out."""
    side = -(-grid // window)
    a = att.reshape(batch, side * side, *att.shape[1:])
    full = np.zeros((batch, a.shape[2], prefix + grid * grid, prefix + grid * grid), dtype=np.float64)
    r, c = (v.ravel() for v in np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    for k in range(side * side):
        rows, cols = k // side * window + r, k % side * window + c
        valid = (rows < grid) & (cols < grid)
        local = np.concatenate([np.arange(prefix), prefix + np.flatnonzero(valid)])
        where = np.concatenate([np.arange(prefix), prefix + rows[valid] * grid + cols[valid]])
        full[:, :, where[prefix:, None], where[None, :]] = a[:, k][:, :, local[prefix:, None], local[None, :]]
        full[:, :, :prefix, where] += a[:, k][:, :, :prefix, local] / (side * side)
    return full
