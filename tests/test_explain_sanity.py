"""The model-randomisation check: every parameter is re-drawn; Grad-CAM of a CNN passes, a map that only shows the
image (independent of the weights) fails."""
import numpy as np
import pytest
import torch
from torch import nn

from medfit.explain.cam import compute_cam
from medfit.explain.sanity import randomisation_check, randomised_copy, rank_similarity


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_every_parameter_is_redrawn_and_the_original_is_untouched():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rand = randomised_copy(model, 0)
    # batch-norm scales reset to 1, which an untrained model still has; every conv and linear weight is re-drawn
    weights = [k for k, v in model.named_parameters() if v.ndim > 1]
    assert len(weights) == 3
    assert all(not torch.equal(dict(rand.named_parameters())[k], before[k]) for k in weights)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_weight_dependent_maps_pass_and_image_maps_fail():
    images = torch.rand(4, 1, 16, 16)
    model = small_cnn()

    def cam(net, x):
        return compute_cam(net, x, target_layer="3")

    def image_only(net, x):  # an "explanation" that ignores the model
        return x[:, 0].numpy()

    assert rank_similarity(np.ones((1, 4, 4)), np.random.rand(1, 4, 4))[0] == 0.0  # constant map: no ranking
    assert randomisation_check(cam, model, images, cam(model, images))["passed"]
    r = randomisation_check(image_only, model, images, image_only(model, images))
    assert r["similarity"] == pytest.approx(1.0) and not r["passed"]
