"""Metrics against scikit-learn and hand-checked values; thresholds; bootstrap CIs."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from medfit.evaluate.metrics import (binary_metrics, bootstrap_ci, choose_threshold, fast_binary_metrics,
                                     stratified_bootstrap_indices)


def test_hand_checked_example():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.3, 0.4, 0.7, 0.8, 0.9, 0.65, 0.2])
    m = binary_metrics(y, p, 0.5)
    # at 0.5: TP=4 (0.7,0.8,0.9,0.65), FN=2 (0.4,0.2), FP=1 (0.6), TN=3
    assert m["sensitivity"] == pytest.approx(4 / 6)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["ppv"] == pytest.approx(4 / 5)
    assert m["npv"] == pytest.approx(3 / 5)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))
    # AUC by counting pairs: positives beat negatives in 20.5 of 24 pairs (0.4 beats 3, 0.2 beats 1 and ties 1)
    assert m["auc"] == pytest.approx(20.5 / 24)


def test_against_sklearn_random():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.normal(0.4, 0.25, 500), 0, 1)
    m = binary_metrics(y, p, 0.55)
    pred = (p >= 0.55).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred))
    assert m["ppv"] == pytest.approx(precision_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    fast = fast_binary_metrics(0.55)(y, p)
    assert fast == pytest.approx(m)


def test_thresholds():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.5, 0.4, 0.8, 0.9, 0.85])
    assert choose_threshold(y, p, "youden") == pytest.approx(0.8)  # J = 3/4 + 1 - 1 = 0.75; at 0.4: 1 + 2/3 - 1
    assert choose_threshold(y, p, "fixed", 0.42) == 0.42
    t = choose_threshold(y, p, "sensitivity", 1.0)
    assert t == pytest.approx(0.4) and binary_metrics(y, p, t)["sensitivity"] == 1.0
    t = choose_threshold(y, p, "specificity", 1.0)
    assert binary_metrics(y, p, t)["specificity"] == 1.0 and t == pytest.approx(0.8)


def test_stratified_bootstrap_keeps_class_counts_and_covers_the_estimate():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(80, int), np.ones(40, int)]
    p = np.clip(y * 0.25 + rng.normal(0.4, 0.2, 120), 0, 1)
    for idx in stratified_bootstrap_indices(y, 5, seed=3):
        assert y[idx].sum() == 40 and len(idx) == 120
    ci = bootstrap_ci(fast_binary_metrics(0.5), y, p, n=400, seed=0)
    point = roc_auc_score(y, p)
    lo, hi = ci["auc"]
    assert lo < point < hi and 0.05 < hi - lo < 0.3
    assert bootstrap_ci(fast_binary_metrics(0.5), y, p, n=400, seed=0) == ci  # seeded: repeatable
