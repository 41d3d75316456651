"""Cohen's kappa against scikit-learn, its bootstrap CI against the large-sample standard error."""
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medfit.errors import ConfigError
from medfit.evaluate.kappa import kappa_ci, kappa_from_confusion


def _ordinal(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    pred = np.clip(y + rng.choice([-1, 0, 0, 0, 1], n), 0, 3)  # mostly right, off by one grade otherwise
    return y, pred


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_point_matches_sklearn(weights):
    y, pred = _ordinal(300)
    r = kappa_ci(y, pred, 4, weights, n_bootstrap=50)
    assert r["kappa"] == pytest.approx(cohen_kappa_score(y, pred, weights=weights))
    assert r["ci"][0] < r["kappa"] < r["ci"][1]
    assert r["weights"] == (weights or "none")


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_vectorised_kappa_of_resampled_matrices_matches_sklearn(weights):
    pairs = [_ordinal(50, seed) for seed in range(5)]
    cms = np.array([np.bincount(4 * y + p, minlength=16).reshape(4, 4) for y, p in pairs], dtype=float)
    ref = [cohen_kappa_score(y, p, labels=range(4), weights=weights) for y, p in pairs]
    assert kappa_from_confusion(cms, weights) == pytest.approx(ref)


def test_quadratic_weights_forgive_near_misses_on_ordinal_grades():
    y, pred = _ordinal(300)
    assert kappa_ci(y, pred, 4, "quadratic", 0)["kappa"] > kappa_ci(y, pred, 4, None, 0)["kappa"] + 0.1


def test_unweighted_ci_width_matches_the_large_sample_standard_error():
    # SE(kappa) ~ sqrt(po (1 - po) / (n (1 - pe)^2)) (Cohen 1960); the 95 % bootstrap interval should be ~ 2 * 1.96 SE
    y, pred = _ordinal(2000, seed=1)
    po = (y == pred).mean()
    pe = sum((y == k).mean() * (pred == k).mean() for k in range(4))
    se = np.sqrt(po * (1 - po) / (len(y) * (1 - pe) ** 2))
    r = kappa_ci(y, pred, 4, None, n_bootstrap=400, seed=2)
    assert r["ci"][1] - r["ci"][0] == pytest.approx(2 * 1.959964 * se, rel=0.15)


def test_perfect_agreement_and_bad_weights():
    y = np.array([0, 1, 2, 2, 1, 0])
    assert kappa_ci(y, y, 3, None, 100)["ci"] == [1.0, 1.0]
    with pytest.raises(ConfigError, match="kappa weights"):
        kappa_ci(y, y, 3, "cubic")
