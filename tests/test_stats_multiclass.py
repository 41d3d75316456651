"""Multiclass and multilabel metrics against scikit-learn and a hand-computed confusion matrix."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, recall_score, roc_auc_score

from medfit.evaluate.multiclass import multiclass_metrics, multilabel_metrics, ovr_auc


def test_ovr_auc_matches_sklearn_macro_and_weighted():
    rng = np.random.default_rng(0)
    y = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    logits = rng.normal(0, 1, (600, 3)) + np.eye(3)[y] * 1.5
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for avg in ("macro", "weighted"):
        assert ovr_auc(y, prob, avg) == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average=avg))
    m = multiclass_metrics(y, prob, ["a", "b", "c"])
    pred = prob.argmax(1)
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    sens = recall_score(y, pred, average=None)
    for k, name in enumerate("abc"):
        assert m["per_class"][name]["sensitivity"] == pytest.approx(sens[k])
        assert m["per_class"][name]["specificity"] == pytest.approx(recall_score(y != k, pred != k))
        assert m["per_class"][name]["auc"] == pytest.approx(roc_auc_score(y == k, prob[:, k]))


def test_hand_computed_three_class_confusion():
    y = np.array([0, 0, 1, 1, 2, 2])
    prob = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    m = multiclass_metrics(y, prob)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # class 0: TP 1, FN 1, FP 1, TN 3
    assert m["per_class"]["0"]["sensitivity"] == 0.5 and m["per_class"]["0"]["specificity"] == 0.75
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_multilabel_per_label_and_macro():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (400, 3))
    prob = np.clip(y * 0.4 + rng.uniform(0, 0.6, (400, 3)), 0, 1)
    m = multilabel_metrics(y, prob, [0.5, 0.5, 0.7], ["x", "y", "z"])
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y, prob, average="macro"))
    assert m["auc_micro"] == pytest.approx(roc_auc_score(y, prob, average="micro"))
    assert m["per_label"]["z"]["sensitivity"] == pytest.approx(recall_score(y[:, 2], prob[:, 2] >= 0.7))
    assert m["per_label"]["z"]["threshold"] == 0.7
