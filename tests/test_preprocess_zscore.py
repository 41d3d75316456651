"""z-score (D1): a z-scored image reaches the model as z-scores (it used to be min-max scaled back into [0, 1], so
the op had no effect), is cached as such, and augmentation keeps its range."""
import glob

import numpy as np
import pytest
import torch

import medfit.preprocess.prepared as pre
from medfit.config import AugmentConfig, PreprocessConfig
from medfit.data.augment import BatchAugment
from medfit.data.rows import Row
from medfit.io import read_image
from medfit.preprocess import Recipe, load_prepared


@pytest.fixture()
def xray(shared_data):
    return sorted(glob.glob(str(shared_data / "chest-xray-pneumonia-224" / "test" / "NORMAL" / "*.jpeg")))[0]


def test_zscore_reaches_the_model_as_zscores(xray):
    raw = read_image(xray).astype(np.float64)
    raw = raw.mean(axis=-1) if raw.ndim == 3 else raw
    out = load_prepared(Row(xray), Recipe.of(PreprocessConfig(ops=[{"name": "zscore"}]), raw.shape[0], 1))[0]
    assert out.shape == raw.shape
    assert abs(float(out.mean())) < 1e-4 and float(out.std()) == pytest.approx(1.0, abs=1e-4)
    expected = (raw - raw.mean()) / raw.std()
    assert np.abs(out - expected).max() < 0.02  # grey conversion rounding only
    minmax = load_prepared(Row(xray), Recipe.of(PreprocessConfig(ops=[{"name": "minmax"}]), raw.shape[0], 1))[0]
    assert minmax.min() == 0.0 and minmax.max() == 1.0 and not np.allclose(out, minmax)


def test_a_later_unit_range_op_ends_the_zscore(xray):
    """clahe maps to [0, 1] again: the recipe's output scale is that of its last scaling op."""
    recipe = Recipe.of(PreprocessConfig(ops=[{"name": "zscore"}, {"name": "clahe"}]), 64, 1)
    assert not recipe.standardised
    out = load_prepared(Row(xray), recipe)
    assert out.min() >= 0 and out.max() <= 1
    assert Recipe.of(PreprocessConfig(ops=[{"name": "minmax"}, {"name": "zscore"}, {"name": "unsharp"}]), 64, 1) \
        .standardised


def test_zscored_entries_are_cache_hits(xray, tmp_path, monkeypatch):
    calls = []
    real = pre.prepare
    monkeypatch.setattr(pre, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    recipe = Recipe.of(PreprocessConfig(ops=[{"name": "zscore"}], cache_dir=str(tmp_path)), 48, 1)
    first, second = load_prepared(Row(xray), recipe), load_prepared(Row(xray), recipe)
    assert len(calls) == 1 and np.array_equal(first, second) and first.min() < -0.5


def test_augmentation_keeps_zscores_and_still_clamps_unit_images():
    aug = BatchAugment(AugmentConfig(rotate_degrees=0, scale=[1.0, 1.0], translate=0.0, brightness=0.3, contrast=0.3))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 1, 16, 16, generator=g)
    out = aug(z, torch.Generator().manual_seed(1))
    assert out.min() < -1.5 and out.max() > 1.5  # not squeezed into [0, 1]
    unit = torch.rand(4, 1, 16, 16, generator=g)
    out = aug(unit, torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1 and (out == 1).any()  # brightened images still clip at 1
