"""Batch augmentation: flip probability, translation ranges, and k augmented copies of each image per epoch."""
import numpy as np
import pytest
import torch

from medfit.config import AugmentConfig, config_from_dict
from medfit.data.augment import BatchAugment, flip_probability, translate_range
from medfit.data.datasets import EpochSeededSampler
from medfit.errors import ConfigError

STILL = dict(rotate_degrees=0.0, scale=[1.0, 1.0], translate=0.0, brightness=0.0, contrast=0.0)


def test_hflip_probability_is_a_config_value():
    assert flip_probability(True) == 0.5 and flip_probability(False) == 0.0 and flip_probability(0.75) == 0.75
    assert config_from_dict({"train": {"augment": {"hflip": 0.75}}}).train.augment.hflip == 0.75
    x = torch.zeros(4000, 1, 8, 8)
    x[..., :4] = 1.0  # left half bright: a mirrored image is bright on the right
    out = BatchAugment(AugmentConfig(hflip=0.75, **STILL))(x, torch.Generator().manual_seed(0))
    flipped = (out[..., 4:].mean(dim=(1, 2, 3)) > 0.5).float().mean().item()
    assert abs(flipped - 0.75) < 0.03  # binomial sd at n=4000 is 0.007
    kept = BatchAugment(AugmentConfig(hflip=True, **STILL))(x, torch.Generator().manual_seed(0))
    assert abs((kept[..., 4:].mean(dim=(1, 2, 3)) > 0.5).float().mean().item() - 0.5) < 0.03
    with pytest.raises(ConfigError, match="hflip"):
        BatchAugment(AugmentConfig(hflip=1.5))


def test_translate_range_shifts_by_a_magnitude_inside_the_range_either_way():
    assert translate_range(0.1) == (0.0, 0.1) and translate_range([0.02, 0.12]) == (0.02, 0.12)
    size = 101
    x = torch.zeros(600, 1, size, size)
    x[:, :, 50, 50] = 1.0  # a dot at the centre
    cfg = AugmentConfig(**{**STILL, "translate": [0.02, 0.12]})
    out = BatchAugment(cfg)(x, torch.Generator().manual_seed(1))
    grid = torch.arange(size, dtype=torch.float32)
    mass = out.sum(dim=(1, 2, 3))
    shift_x = ((out.sum(dim=(1, 2)) * grid).sum(-1).squeeze() / mass - 50) / size
    shift_y = ((out.sum(dim=(1, 3)) * grid).sum(-1).squeeze() / mass - 50) / size
    for shift in (shift_x, shift_y):
        magnitude = shift.abs()
        assert magnitude.min() >= 0.02 - 0.01 and magnitude.max() <= 0.12 + 0.01  # one pixel of interpolation
        assert 0.35 < (shift > 0).float().mean() < 0.65  # both directions
        assert magnitude.max() > 0.11 and magnitude.min() < 0.03  # the whole range is used
    with pytest.raises(ConfigError, match="translate"):
        BatchAugment(AugmentConfig(translate=[0.2, 0.1]))


def test_a_plain_translate_keeps_the_random_stream_of_earlier_runs():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    shifts = BatchAugment(AugmentConfig(translate=0.1)).shifts(16, g1)
    assert torch.allclose(shifts, (-0.1 + 0.2 * torch.rand(16, generator=g2)) * 2)  # uniform in [-t, t], grid units


def test_each_image_is_drawn_k_times_per_epoch():
    sampler = EpochSeededSampler(10, seed=0, repeats=3)
    order = list(sampler)
    assert len(sampler) == len(order) == 30
    assert np.bincount(order, minlength=10).tolist() == [3] * 10
    sampler.set_epoch(1)
    assert list(sampler) != order and sorted(sampler) == sorted(order)
    assert list(EpochSeededSampler(10, seed=0)) == torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    weighted = EpochSeededSampler(10, seed=0, weights=np.ones(10), repeats=4)
    assert len(list(weighted)) == 40
    with pytest.raises(ConfigError, match="repeats"):
        EpochSeededSampler(10, seed=0, repeats=0)
