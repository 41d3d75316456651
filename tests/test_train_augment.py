"""The training batch transform: mixup/cutmix per task, torchvision policies, resized crops, progressive resizing."""
import pytest
import torch

from medfit.config import config_from_dict
from medfit.errors import ConfigError
from medfit.task import Task
from medfit.train.augment import TrainTransform, progressive_size

BINARY, MULTICLASS = Task("binary", ("neg", "pos")), Task("multiclass", ("a", "b", "c"))
MULTILABEL = Task("multilabel", (), ("p", "q"))
NO_JITTER = {"rotate_degrees": 0, "scale": [], "translate": 0, "brightness": 0, "contrast": 0}


def transform(task=BINARY, epochs=10, **train):
    augment = {**NO_JITTER, **train.pop("augment", {})}
    return TrainTransform(config_from_dict({"train": {"epochs": epochs, "augment": augment, **train}}).train, task)


def constant_batch(values):
    """Images whose every pixel is their own value: a mixed pixel tells the mix weight."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 16, 16).clone()


@pytest.mark.parametrize("task, y", [
    (BINARY, torch.tensor([0.0, 1.0, 1.0, 0.0])),
    (MULTICLASS, torch.tensor([0, 2, 1, 0])),
    (MULTILABEL, torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])),
])
def test_mixup_images_and_targets_are_the_same_convex_mixture(task, y):
    values = [0.1, 0.3, 0.6, 0.9]
    x, target, mixed = transform(task, augment={"mixup": 0.4})(constant_batch(values), y, 0, seed=5)
    assert mixed
    v = torch.tensor(values)
    lam = float((x[0, 0, 0, 0] - v[3]) / (v[0] - v[3]))  # image 0 is mixed with image 3 (timm pairs i with B-1-i)
    assert 0 < lam < 1
    assert torch.allclose(x[:, 0, 0, 0], lam * v + (1 - lam) * v.flip(0), atol=1e-6)
    hard = torch.nn.functional.one_hot(y, 3).float() if task.is_multiclass else y.float().view(4, -1)
    assert torch.allclose(target, lam * hard + (1 - lam) * hard.flip(0), atol=1e-6)
    if task.is_multiclass:
        assert torch.allclose(target.sum(1), torch.ones(4))


def test_cutmix_target_weight_is_the_share_of_pixels_kept():
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    x, target, _ = transform(augment={"cutmix": 1.0})(constant_batch([0.0, 0.0, 1.0, 1.0]), y, 0, seed=2)
    pasted = float(x[0].mean())  # image 0 (all 0) got a box of image 3 (all 1)
    assert 0 < pasted < 1
    assert target[0, 0] == pytest.approx(pasted, abs=1e-6)  # its target: 1 - lam = the pasted area


def test_mixup_with_label_smoothing_and_an_odd_batch():
    y = torch.tensor([0, 1, 2, 0, 1])
    x, target, _ = transform(MULTICLASS, label_smoothing=0.3, augment={"mixup": 1.0})(
        constant_batch([0.1, 0.2, 0.3, 0.4, 0.5]), y, 0, seed=0)
    assert x[4, 0, 0, 0] == pytest.approx(0.5)  # the odd last image stays as it is, its target only smoothed
    assert torch.allclose(target[4], torch.tensor([0.1, 0.8, 0.1]))
    assert torch.allclose(target.sum(1), torch.ones(5))
    assert float(target.min()) >= 0.1 - 1e-6  # smoothing 0.3 over 3 classes puts 0.1 on every class


def test_every_draw_comes_from_the_step_seed():
    t = transform(augment={"mixup": 0.4, "cutmix": 1.0, "policy": "randaugment", "resized_crop": [0.5, 1.0],
                           "rotate_degrees": 10})
    x, y = torch.rand(6, 1, 24, 24), torch.tensor([0.0, 1, 0, 1, 1, 0])

    def run(seed):
        torch.manual_seed(seed)  # ClassifierModule.training_step seeds torch's global RNG with the step seed
        return t(x.clone(), y, 0, seed)

    (a, ya, _), (b, yb, _), (c, _, _) = run(11), run(11), run(12)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
def test_policies_change_images_within_range_and_treat_a_study_alike_on_every_slice(policy):
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    out, _, mixed = transform(augment={"policy": policy, "magnitude": 15})(x.clone(), torch.zeros(4), 0, 0)
    assert not mixed and out.shape == x.shape
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert sum(not torch.equal(a, b) for a, b in zip(out, x)) >= 3  # most images changed (identity is one of the ops)
    study = torch.rand(2, 1, 1, 28, 28).expand(2, 3, 1, 28, 28).clone()  # 3 identical slices per study
    out = transform(augment={"policy": policy})(study, torch.zeros(2), 0, 1)[0]
    assert out.shape == study.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_random_resized_crop_zooms_into_the_configured_area():
    ramp = torch.linspace(0, 1, 64).expand(64, 64)  # value = column position
    x = ramp.expand(8, 1, 64, 64).clone()
    torch.manual_seed(0)
    out = transform(augment={"resized_crop": [0.25, 0.25]})(x, torch.zeros(8), 0, 0)[0]
    span = out[:, 0, 32].amax(1) - out[:, 0, 32].amin(1)  # share of the width each crop covers
    # area 0.25 at aspect ratios 3/4..4/3: width sqrt(0.25 * r) in [0.433, 0.577]
    assert torch.all(span > 0.40) and torch.all(span < 0.60)


def test_progressive_resizing_grows_the_input_to_full_size():
    assert [progressive_size(e, 8, 64, [0.5, 0.5]) for e in range(8)] == [32, 40, 48, 56, 64, 64, 64, 64]
    t = transform(epochs=8, progressive_resize=[0.5, 0.5])
    assert t(torch.rand(2, 1, 64, 64), torch.zeros(2), 1, 0)[0].shape[-1] == 40
    assert progressive_size(3, 8, 64, []) == 64


@pytest.mark.parametrize("train, key", [
    ({"augment": {"resized_crop": [0.8, 0.5]}}, "train.augment.resized_crop"),
    ({"augment": {"mixup": 0.2, "mix_prob": 0.0}}, "mix_prob"),
    ({"augment": {"policy": "randaugment", "magnitude": 40}}, "train.augment.magnitude"),
    ({"progressive_resize": [0.5]}, "train.progressive_resize"),
])
def test_bad_settings_are_refused_naming_the_key(train, key):
    with pytest.raises(ConfigError, match=key):
        transform(**train)
