"""Prediction with uncertainty: TTA views, MC-dropout passes, combining members, on tiny networks by hand."""
import numpy as np
import pytest
import torch
from torch import nn

from medfit.config import AugmentConfig, config_from_dict
from medfit.errors import ConfigError
from medfit.task import Task
from medfit.train.tta import shift, tta_views, weak_augment
from medfit.train.uncertainty import combine_samples, dropout_mode, has_dropout, mc_passes, sample_probabilities


class Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], torch.tensor(0.0), i


def net(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 1))


def test_shift_and_flip_views_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = shift(x, 1, 0)
    assert right[0, 0, 0].tolist() == [0, 0, 1, 2] and shift(x, 0, -1)[0, 0, :, 0].tolist() == [4, 8, 12, 12]
    views = tta_views(x, ["hflip", "vflip", "shift"], AugmentConfig(translate=0.25), strength=1.0)
    assert len(views) == 1 + 1 + 1 + 4 and torch.equal(views[0], x)
    assert views[1][0, 0, 0].tolist() == [3, 2, 1, 0] and views[2][0, 0, 0].tolist() == [12, 13, 14, 15]
    assert views[3][0, 0, 0].tolist() == [0, 0, 1, 2]  # shift of translate 0.25 x 4 px x strength 1 = 1 px


def test_study_views_transform_every_slice_alike():
    study = torch.rand(2, 3, 1, 8, 8)  # (B, S, C, H, W)
    views = tta_views(study, ["hflip", "augment"], AugmentConfig(), samples=2)
    assert all(v.shape == study.shape for v in views) and len(views) == 4
    assert torch.equal(views[1], study.flip(-1))
    aug = weak_augment(AugmentConfig(rotate_degrees=10, scale=[0.8, 1.0], translate=0.1), 0.5)
    assert aug.cfg.rotate_degrees == 5 and aug.cfg.scale == [0.9, 1.0] and aug.cfg.translate == 0.05


def test_combine_samples_mean_spread_members_and_no_tta():
    a = np.array([[[[0.2], [0.8]], [[0.4], [0.6]]]])  # member a: 1 pass, 2 views (plain, flipped), 2 cases
    b = np.array([[[[0.6], [0.4]], [[0.6], [0.4]]]])
    c = combine_samples([a, b])
    assert np.allclose(c.members[0][:, 0], [0.3, 0.7]) and np.allclose(c.members[1][:, 0], [0.6, 0.4])
    assert np.allclose(c.prob[:, 0], [0.45, 0.55]) and np.allclose(c.no_tta[:, 0], [0.4, 0.6])
    assert np.allclose(c.spread, [np.std([0.3, 0.6], ddof=1), np.std([0.7, 0.4], ddof=1)])
    single = combine_samples([a[:, :1]])
    assert single.spread is None and single.no_tta is None


def test_mc_dropout_passes_differ_repeat_and_keep_batchnorm_statistics():
    cfg = config_from_dict({"evaluate": {"mc_dropout": 4}})
    model = net(0.5)
    model.eval()
    data = Images(torch.rand(6, 1, 4, 4))
    assert has_dropout(model) and mc_passes([model], cfg) == 4
    first = sample_probabilities(model, data, Task("binary"), cfg, 4, 4, progress=False)
    again = sample_probabilities(model, data, Task("binary"), cfg, 4, 4, progress=False)
    assert first.shape == (4, 1, 6, 1) and np.array_equal(first, again)  # seeded passes
    assert first.std(axis=0).max() > 0.01  # the passes differ
    dropout_mode(model)
    assert model[4].training and not model[2].training  # dropout on, BatchNorm on its running statistics
    with pytest.raises(ConfigError, match="evaluate.mc_dropout 4: the network has no dropout"):
        mc_passes([net(0.0)], cfg)


def test_views_take_a_translate_range_as_the_elbow_study_sets_it():
    """train.augment.translate [low, high] (the elbow configs): shift views step by the largest magnitude."""
    x = torch.arange(2 * 1 * 20 * 20, dtype=torch.float32).view(2, 1, 20, 20)
    views = tta_views(x, ["shift", "augment"], AugmentConfig(translate=[0.02, 0.1]), strength=1.0, samples=2)
    assert len(views) == 1 + 4 + 2 and all(v.shape == x.shape for v in views)
    torch.testing.assert_close(views[1], shift(x, 2, 0))  # 20 px x 0.1 x strength 1
    assert weak_augment(AugmentConfig(translate=[0.02, 0.1]), 0.5).cfg.translate == [0.01, 0.05]
