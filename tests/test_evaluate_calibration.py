"""Classwise calibration of multiclass and multilabel probabilities, by hand and against the binary functions."""
import numpy as np
import pytest

from medfit.evaluate.calibration import classwise_calibration, expected_calibration_error


def test_two_class_table_by_hand():
    y = np.array([0, 1])
    prob = np.array([[0.8, 0.2], [0.4, 0.6]])
    c = classwise_calibration(y, prob, ["neg", "pos"])
    # Brier: row 0 (0.8-1)^2 + 0.2^2 = 0.08, row 1 0.4^2 + (0.6-1)^2 = 0.32 -> mean 0.2
    assert c["brier_multiclass"] == pytest.approx(0.2)
    # top label: confidences 0.8 and 0.6, both right, in different bins -> (|1-0.8| + |1-0.6|) / 2 = 0.3
    assert c["top_label_ece"] == pytest.approx(0.3)
    # class neg: p = (0.8, 0.4) for y = (1, 0) -> (0.2 + 0.4) / 2; class pos: p = (0.2, 0.6) for y = (0, 1) -> same
    assert c["per_class"]["neg"]["ece"] == pytest.approx(0.3) and c["classwise_ece"] == pytest.approx(0.3)
    assert c["per_class"]["pos"]["reliability"]["count"] == [1, 1]


def test_classwise_equals_the_binary_ece_per_column_and_multilabel_has_no_top_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    prob = rng.dirichlet(np.ones(3), 500)
    c = classwise_calibration(y, prob, ["a", "b", "c"], n_bins=5)
    eces = [expected_calibration_error(y == k, prob[:, k], 5) for k in range(3)]
    assert [c["per_class"][n]["ece"] for n in "abc"] == pytest.approx(eces)
    assert c["classwise_ece"] == pytest.approx(np.mean(eces))
    Y = (rng.uniform(size=(100, 2)) < 0.3).astype(int)
    m = classwise_calibration(Y, rng.uniform(size=(100, 2)), ["x", "y"])
    assert "top_label_ece" not in m and set(m["per_class"]) == {"x", "y"}
