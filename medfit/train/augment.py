"""The training-time transform of a batch, every draw from the step's seed: medfit's affine and intensity jitter,
torchvision v2 policies (RandAugment, TrivialAugment) and random resized crops per image, progressive resizing, and
timm's mixup / cutmix with targets mixed the task's way."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from torchvision.transforms import v2

from medfit.config import AugmentConfig, TrainConfig
from medfit.data.augment import BatchAugment
from medfit.errors import ConfigError
from medfit.task import Task
from medfit.train.losses import dense_targets


def image_policy(cfg: AugmentConfig) -> v2.Transform | None:
    """The torchvision v2 policy of ``augment.policy`` (None for "none")."""
    if cfg.policy == "randaugment":
        if not 0 <= cfg.magnitude <= 30 or cfg.num_ops < 1:
            raise ConfigError(f"train.augment.magnitude {cfg.magnitude} / num_ops {cfg.num_ops}: expected a magnitude "
                              "in 0..30 and at least one op")
        return v2.RandAugment(num_ops=cfg.num_ops, magnitude=cfg.magnitude)
    return v2.TrivialAugmentWide() if cfg.policy == "trivialaugment" else None


def crop_scale(cfg: AugmentConfig) -> tuple[float, float] | None:
    """The area range of ``augment.resized_crop`` (None when off)."""
    if not cfg.resized_crop:
        return None
    if len(cfg.resized_crop) != 2 or not 0 < cfg.resized_crop[0] <= cfg.resized_crop[1] <= 1:
        raise ConfigError(f"train.augment.resized_crop {list(cfg.resized_crop)}: expected [min, max] area shares with "
                          "0 < min <= max <= 1, e.g. [0.6, 1.0]")
    return float(cfg.resized_crop[0]), float(cfg.resized_crop[1])


def per_image(transform: v2.Transform, x: torch.Tensor) -> torch.Tensor:
    """``transform`` drawn anew for every image of a (B, C, H, W) batch; an image whose channels are not grey or RGB
    (2.5D neighbours, a study's slices) gets one draw for all its channels."""
    out = []
    for image in x:
        out.append(transform(image) if image.shape[0] in (1, 3) else transform(image.unsqueeze(1)).squeeze(1))
    return torch.stack(out)


def progressive_size(epoch: int, epochs: int, size: int, schedule: list[float]) -> int:
    """The input side at ``epoch`` of progressive resizing ``[start scale, share of epochs]``: start * size at epoch
    0, growing linearly to full size after that share of the epochs (fastai's progressive resizing)."""
    if not schedule:
        return size
    if len(schedule) != 2 or not (0 < schedule[0] <= 1 and 0 < schedule[1] <= 1):
        raise ConfigError(f"train.progressive_resize {list(schedule)}: expected [start scale, share of epochs], each "
                          "in (0, 1], e.g. [0.5, 0.5]")
    start, share = schedule
    ramp = max(1, round(share * epochs))
    return max(8, int(round(size * (start + (1 - start) * min(1.0, epoch / ramp)))))


def batch_mixer(cfg: AugmentConfig, task: Task, smoothing: float) -> Mixup | None:
    """timm's Mixup/CutMix for the task: class indices (multiclass) or dense per-output targets (binary, multilabel)."""
    if not (cfg.mixup or cfg.cutmix):
        return None
    if cfg.mixup < 0 or cfg.cutmix < 0 or not 0 < cfg.mix_prob <= 1:
        raise ConfigError(f"train.augment mixup {cfg.mixup} / cutmix {cfg.cutmix} / mix_prob {cfg.mix_prob}: "
                          "expected alphas >= 0 and mix_prob in (0, 1]")
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mix_prob, label_smoothing=smoothing,
                 num_classes=task.num_outputs, multi_label=not task.is_multiclass)


def mix(mixer: Mixup, task: Task, x: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mix ``x`` in place and return the dense mixed targets; timm mixes image i with image B-1-i, so an odd last
    image stays unmixed (its target only smoothed)."""
    target = dense_targets(task, y, smoothing)
    n = len(x) - len(x) % 2
    if n:
        labels = y[:n].long() if task.is_multiclass else y[:n].float().view(n, -1)
        _, target[:n] = mixer(x[:n], labels)
    return target


class TrainTransform:
    """Everything a training step does to its batch before the forward pass: ``(x, y) -> (x, y, mixed)``."""

    def __init__(self, cfg: TrainConfig, task: Task):
        self.cfg, self.task = cfg, task
        self.affine = BatchAugment(cfg.augment)
        self.policy, self.crop = image_policy(cfg.augment), crop_scale(cfg.augment)
        self.mixer = batch_mixer(cfg.augment, task, cfg.label_smoothing)
        progressive_size(0, max(cfg.epochs, 1), 64, cfg.progressive_resize)  # refuse a bad schedule up front

    def planar(self, x: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
        """The per-image transforms of a (B, C, H, W) batch (the caller seeded torch's global RNG)."""
        x = self.affine(x, torch.Generator().manual_seed(seed))
        if self.crop:
            x = per_image(v2.RandomResizedCrop(tuple(x.shape[-2:]), scale=self.crop, antialias=True), x)
        if self.policy is not None:
            x = per_image(self.policy, x)
        side = progressive_size(epoch, self.cfg.epochs, x.shape[-1], self.cfg.progressive_resize)
        if side != x.shape[-1]:
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        return x

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        # Studies (B, S, C, H, W) / volumes (B, C, D, H, W): one in-plane transform per study, the same on every slice.
        planar = self.planar(x.flatten(1, -3) if x.ndim == 5 else x, epoch, seed)
        if self.mixer is not None:
            np.random.seed(seed % 2**32)  # timm draws the mix weight and the cutmix box from numpy's global RNG
            y = mix(self.mixer, self.task, planar, y, self.cfg.label_smoothing)
        return planar.reshape(*x.shape[:-2], *planar.shape[-2:]), y, self.mixer is not None
