"""Saliency: Adebayo model-randomisation sanity check on real chest X-rays, ViT Grad-CAM and attention rollout."""
import copy

import cv2
import numpy as np
import pytest
import timm
import torch
from scipy.stats import spearmanr
from torch import nn

from medfit.errors import ConfigError
from medfit.explain import attention_rollout, compute_cam, find_target_layer
from medfit.explain.overlay import write_overlay
from medfit.explain.rollout import attention_maps, rollout_from_attentions
from tiny_fit import fit_binary

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def rank_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Spearman correlation of paired maps; a constant map (nothing highlighted) shares no ranking (0)."""
    rhos = []
    for p, q in zip(a, b):
        rho = spearmanr(p.ravel(), q.ravel())[0] if p.std() > 0 and q.std() > 0 else 0.0
        rhos.append(rho)
    return float(np.mean(rhos))


def test_gradcam_passes_the_model_randomisation_sanity_check(shared_data):
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    data = np.load(shared_data / NPZ)
    x = torch.tensor(data["train_images"][:2000], dtype=torch.float32)[:, None] / 255
    y = torch.tensor(data["train_labels"][:2000, 0], dtype=torch.float32)
    xt = torch.tensor(data["test_images"], dtype=torch.float32)[:, None] / 255
    yt = data["test_labels"][:, 0]
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    fit_binary(model, x, y, opt, 3)
    with torch.no_grad():
        assert roc_auc_score(yt, model(xt)[:, 0].numpy()) > 0.8  # it learnt something real
    assert find_target_layer(model, xt[:1]) == "7"  # the last spatial activation, before global pooling
    cases = xt[np.flatnonzero(yt == 1)[:16]]
    trained = compute_cam(model, cases)
    assert trained.shape == (16, 28, 28) and trained.max() == pytest.approx(1.0)
    assert rank_similarity(trained, compute_cam(model, cases)) == pytest.approx(1.0)  # deterministic
    # Adebayo et al. 2018: re-initialise every layer (cascading randomisation to the bottom); the maps must change.
    sims = []
    for seed in range(5):
        torch.manual_seed(100 + seed)
        rand = copy.deepcopy(model)
        for module in rand.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        sims.append(rank_similarity(trained, compute_cam(rand, cases)))
    assert np.median(sims) < 0.5, sims
    assert max(sims) < 0.9, sims


def tiny_vit(**kw) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=1, in_chans=1,
                             **kw).eval()


def test_vit_gradcam_drops_prefix_tokens_and_finds_the_last_block():
    x = torch.rand(3, 1, 32, 32)
    for kw, prefix in (({}, 1), ({"reg_tokens": 3}, 4)):
        model = tiny_vit(**kw)
        assert model.num_prefix_tokens == prefix
        assert find_target_layer(model, x) == "blocks.1.norm1"
        maps = compute_cam(model, x)
        assert maps.shape == (3, 32, 32) and np.isfinite(maps).all() and maps.max() > 0
    with pytest.raises(ConfigError, match="target layer"):
        compute_cam(model, x, target_layer="blocks.9.norm1")
    with pytest.raises(ConfigError, match="method"):
        compute_cam(model, x, method="nonsense")


def test_attention_rollout_with_fused_attention():
    model = tiny_vit()
    assert all(b.attn.fused_attn for b in model.blocks)  # timm's default: scaled_dot_product_attention, no weights
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
    atts = attention_maps(model, x)
    assert len(atts) == 2 and atts[0].shape == (2, 3, 17, 17)
    assert torch.allclose(atts[0].sum(-1), torch.ones(2, 3, 17), atol=1e-5)  # softmax rows
    maps = attention_rollout(model, x)
    assert maps.shape == (2, 32, 32) and maps.min() == 0 and maps.max() == pytest.approx(1.0)
    assert all(b.attn.fused_attn for b in model.blocks)  # restored after the pass
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-5)
    # hand check of the recurrence on one layer, one head, 2 tokens: 0.5 I + 0.5 A, rows renormalised
    a = np.array([[[[0.2, 0.8], [0.6, 0.4]]]])
    assert rollout_from_attentions([a])[0] == pytest.approx(np.array([[0.6, 0.4], [0.3, 0.7]]))
    two = rollout_from_attentions([a, a])[0]
    assert two == pytest.approx(np.array([[0.6, 0.4], [0.3, 0.7]]) @ np.array([[0.6, 0.4], [0.3, 0.7]]))
    with pytest.raises(ConfigError, match="ViT"):
        attention_rollout(tiny_cnn(), torch.rand(1, 1, 28, 28))


def test_overlay_png_has_the_map_and_the_caption(tmp_path):
    image = np.zeros((1, 28, 28), np.float32)
    cam = np.zeros((28, 28), np.float32)
    cam[14:, 14:] = 1.0
    path = write_overlay(tmp_path / "o.png", image, cam, "p(PNEUMONIA) = 0.93")
    png = cv2.imread(str(path))[:, :, ::-1]
    assert png.shape == (256, 256, 3)
    assert png[200, 200, 0] > 100 and png[200, 200, 0] > png[60, 60, 0] + 80  # hot corner red, cold corner blue/dark
    assert (png[:22].max(axis=2) > 200).sum() > 50  # white caption text on the black band
