"""Batch augmentation on tensors: random affine and intensity jitter, seeded per batch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medfit.config import AugmentConfig


class BatchAugment:
    """Random rotation, scale, translation, flip and brightness/contrast for a (B, C, H, W) batch in [0, 1] (or of
    z-scores)."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    @property
    def enabled(self) -> bool:
        """False when every setting is neutral (the batch is then returned untouched)."""
        c = self.cfg
        return bool(c.hflip or c.rotate_degrees or c.translate or c.brightness or c.contrast
                    or (c.scale and list(c.scale) != [1.0, 1.0]))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        b = x.shape[0]
        if not self.enabled:
            return x

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=generator)

        angle = uniform(-cfg.rotate_degrees, cfg.rotate_degrees) * math.pi / 180
        scale = uniform(*cfg.scale) if cfg.scale else torch.ones(b)
        tx, ty = uniform(-cfg.translate, cfg.translate) * 2, uniform(-cfg.translate, cfg.translate) * 2
        flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(b)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if cfg.brightness or cfg.contrast:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            c = uniform(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
            br = uniform(-cfg.brightness, cfg.brightness).view(b, 1, 1, 1)
            # clamped to [0, 1], or to the image's own wider range (z-scored inputs stay z-scores)
            lo = x.amin(dim=(1, 2, 3), keepdim=True).clamp(max=0.0)
            hi = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
            out = torch.minimum(torch.maximum((out - mean) * c + mean + br, lo), hi)
        return out
