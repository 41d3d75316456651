"""Test-time augmentation views of a batch: flips, small shifts, and the training augmentation at low strength.

Images (B, C, H, W) are transformed as they are; studies (B, S, C, H, W) and volumes (B, C, D, H, W) get one in-plane
transform per study, the same on every slice (as in training), so a study's views stay studies.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from medfit.config import AugmentConfig
from medfit.data.augment import BatchAugment, translate_range

VIEWS = ("hflip", "vflip", "shift", "augment")


def _in_plane(x: torch.Tensor, transform) -> torch.Tensor:
    """Apply a (B, C, H, W) transform to images, or to every slice of a study alike."""
    return transform(x.flatten(1, -3)).view_as(x) if x.ndim == 5 else transform(x)


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift by whole pixels, edges repeated (no wrap-around): dx to the right, dy down."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h) - dy).clamp(0, h - 1)
    cols = (torch.arange(w) - dx).clamp(0, w - 1)
    return x[..., rows, :][..., cols]


def _scaled(translate, strength: float):
    """train.augment.translate (a fraction, or [low, high] shift magnitudes) scaled by ``strength``."""
    return [v * strength for v in translate] if isinstance(translate, (list, tuple)) else translate * strength


def weak_augment(cfg: AugmentConfig, strength: float) -> BatchAugment:
    """The training augmentation with every range scaled by ``strength`` (flips kept as they are)."""
    lo, hi = (list(cfg.scale) or [1.0, 1.0])
    return BatchAugment(replace(cfg, rotate_degrees=cfg.rotate_degrees * strength,
                                scale=[1 - (1 - lo) * strength, 1 + (hi - 1) * strength],
                                translate=_scaled(cfg.translate, strength), brightness=cfg.brightness * strength,
                                contrast=cfg.contrast * strength))


def tta_views(x: torch.Tensor, views: list[str], augment: AugmentConfig, strength: float = 0.5, samples: int = 4,
              seed: int = 0) -> list[torch.Tensor]:
    """The batch itself first, then one tensor per view (``augment``: ``samples`` seeded random views)."""
    out = [x]
    size = x.shape[-1]
    step = max(1, round(size * max(translate_range(augment.translate)[1], 0.02) * strength))  # pixels; at least 1
    for view in views:
        if view == "hflip":
            out.append(_in_plane(x, lambda t: t.flip(-1)))
        elif view == "vflip":
            out.append(_in_plane(x, lambda t: t.flip(-2)))
        elif view == "shift":
            out += [_in_plane(x, lambda t, d=d: shift(t, *d)) for d in ((step, 0), (-step, 0), (0, step), (0, -step))]
        elif view == "augment":
            aug = weak_augment(augment, strength)
            out += [_in_plane(x, lambda t, k=k: aug(t, torch.Generator().manual_seed(seed * 1009 + k)))
                    for k in range(samples)]
    return out
