"""Training losses: soft targets agree with the task's cross-entropy; focal loss is (1 - p_t)**gamma times it."""
import math

import pytest
import torch

from medfit.config import config_from_dict
from medfit.task import Task
from medfit.train.losses import TrainingLoss, dense_targets, focal_loss

BINARY, MULTICLASS = Task("binary", ("neg", "pos")), Task("multiclass", ("a", "b", "c"))
MULTILABEL = Task("multilabel", (), ("p", "q"))


def loss_of(task, **train):
    return TrainingLoss(task, config_from_dict({"train": train}).train)


@pytest.mark.parametrize("task, y, weights", [
    (BINARY, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([2.5])),
    (MULTICLASS, torch.tensor([0, 2, 1]), None),  # weighted: see the next test
    (MULTILABEL, torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]), torch.tensor([1.0, 3.0])),
])
def test_dense_smoothed_targets_give_the_tasks_own_cross_entropy(task, y, weights):
    logits = torch.randn(3, task.num_outputs, generator=torch.Generator().manual_seed(0))
    plain = task.loss(logits, y, weights, 0.2)
    dense = loss_of(task, label_smoothing=0.2)(logits, dense_targets(task, y, 0.2), weights, mixed=True)
    assert float(dense) == pytest.approx(float(plain), rel=1e-6)


def test_weighted_soft_cross_entropy_weights_each_class_term():
    logits = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    target, w = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]]), torch.tensor([0.5, 1.0, 2.0])
    expected = -(w * target * logits.log_softmax(1)).sum(1).mean()  # mixed images: no single class to normalise by
    assert float(loss_of(MULTICLASS)(logits, target, w, mixed=True)) == pytest.approx(float(expected), rel=1e-6)


def test_binary_focal_loss_is_cross_entropy_times_one_minus_p_t_to_the_gamma():
    logit, p = torch.tensor([[2.0]]), 1 / (1 + math.exp(-2.0))
    ce = -math.log(p)  # a positive image at p = 0.881
    for gamma in (0.0, 1.0, 2.0):
        loss = loss_of(BINARY, loss="focal", focal_gamma=gamma)(logit, torch.tensor([1.0]))
        assert float(loss) == pytest.approx(ce * (1 - p) ** gamma, rel=1e-5)
    # class balance: alpha = w / (1 + w) on positives, 1 - alpha on negatives
    w = torch.tensor([3.0])
    pos = focal_loss(BINARY, logit, torch.tensor([[1.0]]), 2.0, w)
    neg = focal_loss(BINARY, logit, torch.tensor([[0.0]]), 2.0, w)
    assert float(pos) == pytest.approx(0.75 * ce * (1 - p) ** 2, rel=1e-5)
    assert float(neg) == pytest.approx(0.25 * -math.log(1 - p) * p ** 2, rel=1e-5)


def test_multiclass_focal_loss_at_gamma_0_is_cross_entropy_and_easy_images_count_less():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.2, 0.1, 0.0]])
    y = torch.tensor([0, 0])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    at0 = loss_of(MULTICLASS, loss="focal", focal_gamma=0.0)(logits, y)
    assert float(at0) == pytest.approx(float(ce.mean()), rel=1e-5)
    p = logits.softmax(1)[:, 0]
    at2 = loss_of(MULTICLASS, loss="focal", focal_gamma=2.0)(logits, y)
    assert float(at2) == pytest.approx(float((ce * (1 - p) ** 2).mean()), rel=1e-5)


def test_multilabel_focal_loss_balances_each_label_by_its_own_weight():
    logits, target = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
    w = torch.tensor([1.0, 3.0])  # alphas 0.5 and 0.75
    loss = focal_loss(MULTILABEL, logits, target, 0.0, w)
    assert float(loss) == pytest.approx(math.log(2) * (0.5 + 0.75) / 2, rel=1e-6)
