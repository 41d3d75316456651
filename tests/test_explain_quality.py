"""Saliency quality checks: map coarseness on known layer shapes, pointing game and mass share on maps and masks with
known answers, ROAD faithfulness on a model whose evidence is known and on a CNN trained on PneumoniaMNIST."""
import numpy as np
import pytest
import timm
import torch
from torch import nn

from medfit.errors import DataError
from medfit.explain.cam import compute_cam
from medfit.explain.quality import (check_target_layer, coarse_map_warning, faithfulness, feature_map_size,
                                    feature_map_sizes, localisation, mass_in_mask, pointing_hits, random_maps,
                                    rank_maps)

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def pyramid_cnn() -> nn.Module:
    """28 px input: conv 28x28 (0), pool 14x14 (2), conv 14x14 (3), pool 7x7 (5), conv 7x7 (6), pool 3x3 (8)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))


# ---- (a) is the map fine enough

def test_feature_map_sizes_by_forward_hooks():
    x = torch.rand(2, 1, 28, 28)
    sizes = feature_map_sizes(pyramid_cnn(), x)
    assert (sizes["0"], sizes["2"], sizes["5"], sizes["8"], sizes["9"], sizes["10"]) == (
        (28, 28), (14, 14), (7, 7), (3, 3), (3, 3), (1, 1))
    assert "12" not in sizes  # the linear head has no spatial output
    assert feature_map_size(pyramid_cnn(), "6", x) == (7, 7)
    with pytest.raises(DataError, match="no spatial"):
        feature_map_size(pyramid_cnn(), "12", x)


def test_coarse_layer_warns_and_names_the_last_fine_enough_layer():
    x = torch.rand(1, 1, 28, 28)
    assert check_target_layer(pyramid_cnn(), "6", x) == {"layer": "6", "map_size": [7, 7], "warning": None}
    r = check_target_layer(pyramid_cnn(), "9", x)
    assert r["map_size"] == [3, 3]
    assert r["warning"] == ("'9' gives a 3x3 saliency map (one cell per 9x9 px of the 28x28 input), too coarse to "
                            "localise findings: explain an earlier layer (e.g. --target-layer 7) or train at a "
                            "higher resolution")
    assert coarse_map_warning((7, 7), (224, 224)) is None
    no_suggestion = coarse_map_warning((2, 2), (64, 64))
    assert "2x2 saliency map (one cell per 32x32 px" in no_suggestion and "--target-layer" not in no_suggestion


def test_vit_block_size_is_its_patch_grid():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=1, in_chans=1)
    x = torch.rand(1, 1, 32, 32)
    assert feature_map_size(vit, "blocks.1.norm1", x) == (4, 4)
    assert "4x4 saliency map (one cell per 8x8 px" in check_target_layer(vit, "blocks.1.norm1", x)["warning"]


# ---- (c) does the map point into the mask

def _mask_10x10() -> np.ndarray:
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 2:4, 2:7] = True  # 10 px: area share 0.1
    return mask


def test_pointing_and_mass_by_hand():
    mask = _mask_10x10()
    cam = np.full((1, 10, 10), 0.5)
    cam[0, 3, 4] = 1.0  # the maximum, inside
    assert pointing_hits(cam, mask).tolist() == [1.0]
    # mass: inside 9 * 0.5 + 1 = 5.5 of 99 * 0.5 + 1 = 50.5
    assert mass_in_mask(cam, mask) == pytest.approx([5.5 / 50.5])
    off = np.full((1, 10, 10), 0.5)
    off[0, 5, 4] = 1.0  # 2 px below the mask's last row (row 3)
    assert pointing_hits(off, mask, tolerance=2).tolist() == [1.0]
    assert pointing_hits(off, mask, tolerance=1).tolist() == [0.0]
    assert pointing_hits(np.ones((1, 10, 10)), mask).tolist() == [0.1]  # all pixels tie: 10 of 100 maxima inside


def test_random_baseline_equals_the_mask_share_and_a_good_map_beats_it():
    mask = np.repeat(_mask_10x10(), 4, axis=0)
    good = np.where(mask, 0.9, 0.1)  # mass inside 10 * 0.9 = 9 of 9 + 90 * 0.1 = 18
    r = localisation(good, mask, n_random=200, seed=1)
    assert r["pointing_hit_rate"] == 1.0 and r["mass_in_mask"] == pytest.approx(0.5)
    # i.i.d. random maps: hit rate and mass share both ~ the mask's area share 0.1 (800 draws: SE of the hit rate 0.011)
    assert r["pointing_hit_rate_random"] == pytest.approx(0.1, abs=0.035)
    assert r["mass_in_mask_random"] == pytest.approx(0.1, abs=0.01)
    assert r["mask_area_share"] == 0.1
    assert localisation(good, mask, tolerance=1, n_random=10)["tolerance_area_share"] == pytest.approx(0.24)
    with pytest.raises(DataError, match="empty"):
        localisation(good, np.zeros_like(mask))
    with pytest.raises(DataError, match="same size"):
        localisation(good[:, :5], mask)


def test_rank_maps_break_ties_and_random_maps_are_seeded_and_smooth():
    cam = np.zeros((1, 4, 4))
    cam[0, 0, :2] = [0.5, 1.0]
    ranks = rank_maps(cam, seed=0)[0].ravel()
    assert sorted(ranks.tolist()) == pytest.approx(np.linspace(0, 1, 16).tolist())  # 14 tied zeros, now distinct
    assert ranks[1] == 1.0 and ranks[0] == pytest.approx(14 / 15)
    a, b = random_maps(3, (28, 28), seed=5, grain=7), random_maps(3, (28, 28), seed=5, grain=7)
    assert np.array_equal(a, b) and a.shape == (3, 28, 28) and a.min() == 0 and a.max() == 1
    lag = lambda m: np.corrcoef(m[:, :, :-1].ravel(), m[:, :, 1:].ravel())[0, 1]  # noqa: E731
    assert lag(a) > 0.9 and abs(lag(random_maps(3, (28, 28), seed=5))) < 0.1


# ---- (b) is the map faithful to the model

class SpotDetector(nn.Module):
    """Evidence known by construction: logit = 10 x (the brightest 5x5 mean - 0.5); only a bright square counts."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 5, padding=2, bias=False), nn.ReLU(), nn.AvgPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(1, 1))
        with torch.no_grad():
            self.features[0].weight.fill_(1 / 25)
            self.head[2].weight.fill_(10.0)
            self.head[2].bias.fill_(-5.0)

    def forward(self, x):
        return self.head(self.features(x))


def _spot_images(n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.3, (n, 1, 28, 28))
    masks = np.zeros((n, 28, 28), bool)
    for i in range(n):
        r, c = rng.integers(2, 20, 2)
        images[i, 0, r:r + 6, c:c + 6] = 1.0
        masks[i, r:r + 6, c:c + 6] = True
    return torch.tensor(images, dtype=torch.float32), masks


def test_gradcam_of_a_known_evidence_model_beats_random_maps():
    model = SpotDetector().eval()
    images, masks = _spot_images()
    maps = compute_cam(model, images, "gradcam", "features")
    loc = localisation(maps, masks, n_random=20)
    assert loc["pointing_hit_rate"] == 1.0 and loc["pointing_hit_rate_random"] < 0.15  # square: 36/784 = 4.6 %
    assert loc["mass_in_mask"] > 3 * loc["mass_in_mask_random"]
    f = faithfulness(model, images, maps, percentiles=(20, 50, 80), n_random=1, score="probability")
    # imputing the most relevant 20-80 % removes the square (p 0.99 -> ~0.1); imputing the least relevant keeps it
    assert f["road"] > 0.3 and f["road_random"] < 0.15 and f["wins"] == 1.0 and f["wilcoxon_p"] < 0.001
    assert faithfulness(model, images, maps, percentiles=(50,), n_random=1)["road"] > 2  # logit: 10 x the drop


def small_cnn() -> nn.Module:
    """8-16-16 channels with batch norm: AUC 0.87-0.94 on the PneumoniaMNIST test split after 100 steps (seeds 0-3)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 1))


def trained_on_pneumoniamnist(data, seed: int = 0, steps: int = 100) -> nn.Module:
    torch.manual_seed(seed)
    x = torch.tensor(data["train_images"], dtype=torch.float32)[:, None] / 255
    y = torch.tensor(data["train_labels"][:, 0], dtype=torch.float32)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, len(x), (64,), generator=g)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[i])[:, 0], y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_gradcam_of_a_cnn_trained_on_pneumoniamnist_beats_random_maps(shared_data):
    # one thread: the 100-step training (and so the map) is then the same on every machine; with the default thread
    # count its float sums run in another order and seed 0 lands on a weaker model
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_trained_gradcam(shared_data)
    finally:
        torch.set_num_threads(threads)


def _check_trained_gradcam(shared_data):
    data = np.load(shared_data / NPZ)
    model = trained_on_pneumoniamnist(data)
    test_y = data["test_labels"][:, 0]
    pick = np.r_[np.flatnonzero(test_y == 0)[:8], np.flatnonzero(test_y == 1)[:8]]
    images = torch.tensor(data["test_images"][pick], dtype=torch.float32)[:, None] / 255
    assert check_target_layer(model, "6", images) == {"layer": "6", "map_size": [14, 14], "warning": None}
    maps = compute_cam(model, images, "gradcam", "6")
    f = faithfulness(model, images, maps, percentiles=(20, 50, 80), n_random=2)
    # measured over training seeds 0-3: ROAD (logit) 0.24-1.54 against -0.03-0.06 for random 7x7-grain maps, the map
    # winning on 9-16 of 16 images (Wilcoxon p 3e-5 to 0.25; seed 0 here: 0.48 vs -0.005, 13 of 16, p 0.003)
    assert f["road"] > f["road_random"] + 0.1 and f["wins"] >= 0.75 and f["wilcoxon_p"] < 0.01
