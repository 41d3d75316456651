"""Per-class ROC and PR points on a hand-made table."""
import numpy as np
import pytest

from medfit.evaluate.curves import ovr_curves

Y = np.array([0, 0, 1, 2])
P = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])


def test_class_a_points_by_hand():
    c = ovr_curves(Y, P, ["a", "b", "c"])
    # a vs rest: positives 0.9, 0.4; negatives 0.5, 0.1. Cuts 1 (cap of inf), 0.9, 0.5, 0.4, 0.1:
    # (FPR, TPR) = (0, 0), (0, .5), (.5, .5), (.5, 1), (1, 1)
    roc = c["a"]["roc"]
    assert list(zip(roc["fpr"], roc["tpr"])) == [(0, 0), (0, 0.5), (0.5, 0.5), (0.5, 1), (1, 1)]
    assert roc["thresholds"] == [1.0, 0.9, 0.5, 0.4, 0.1]
    # PR at 0.9: P 1, R .5; at 0.5: P .5, R .5; at 0.4: P 2/3, R 1; at 0.1: P .5, R 1; then (1, 0)
    pr = c["a"]["pr"]
    assert pr["precision"] == pytest.approx([0.5, 2 / 3, 0.5, 1, 1])
    assert pr["recall"] == pytest.approx([1, 1, 0.5, 0.5, 0])
    # AP = sum (R_n - R_{n-1}) P_n = 0.5 * 1 + 0.5 * 2/3
    assert pr["average_precision"] == pytest.approx(0.5 + 1 / 3) and pr["prevalence"] == 0.5


def test_absent_class_has_no_curves():
    assert ovr_curves(np.array([0, 1, 0]), np.eye(3)[[0, 1, 0]], ["a", "b", "c"])["c"] is None
