"""Batch augmentation on tensors: random affine and intensity jitter, seeded per batch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medfit.config import AugmentConfig
from medfit.errors import ConfigError


def flip_probability(hflip: bool | float) -> float:
    """``augment.hflip`` as a probability: true is 0.5, false 0, a number is itself (checked to lie in [0, 1])."""
    p = 0.5 if hflip is True else float(hflip)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"train.augment.hflip {hflip}: expected true/false or a probability in [0, 1], e.g. 0.75")
    return p


def translate_range(translate: float | list[float]) -> tuple[float, float]:
    """``augment.translate`` as (lowest, highest) shift magnitude per axis, a fraction of the image size."""
    bounds = [0.0, translate] if isinstance(translate, (int, float)) else list(translate)
    lo, hi = (float(v) for v in bounds) if len(bounds) == 2 else (1.0, 0.0)
    if not 0.0 <= lo <= hi:
        raise ConfigError(f"train.augment.translate {translate}: expected a fraction t or a range [lo, hi] with "
                          "0 <= lo <= hi, e.g. [0.02, 0.12]")
    return lo, hi


class BatchAugment:
    """Random rotation, scale, translation, flip and brightness/contrast for a (B, C, H, W) batch in [0, 1] (or of
    z-scores)."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.flip_p = flip_probability(cfg.hflip)
        self.shift = translate_range(cfg.translate)

    @property
    def enabled(self) -> bool:
        """False when every setting is neutral (the batch is then returned untouched)."""
        c = self.cfg
        return bool(self.flip_p or c.rotate_degrees or self.shift[1] or c.brightness or c.contrast
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
        tx, ty = self.shifts(b, generator), self.shifts(b, generator)
        flip = torch.where(torch.rand(b, generator=generator) < self.flip_p, -1.0, 1.0) if self.flip_p else torch.ones(b)
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

    def shifts(self, b: int, generator: torch.Generator) -> torch.Tensor:
        """One axis's shifts in affine-grid units (2 = the image size): a magnitude in the range, either sign."""
        lo, hi = self.shift
        if lo == 0:  # a symmetric range [-hi, hi], drawn as before ranges existed (same random stream)
            return (-hi + 2 * hi * torch.rand(b, generator=generator)) * 2
        magnitude = lo + (hi - lo) * torch.rand(b, generator=generator)
        sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
        return magnitude * sign * 2
