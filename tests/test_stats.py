"""DeLong, Wilson and ROC bands against scikit-learn, SciPy, a published example and hand-computed values."""
import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score

from medfit.errors import DataError
from medfit.evaluate.stats import (delong_auc_ci, delong_covariance, delong_test, proportion_intervals,
                                   roc_ci_band, wilson_interval)


def brute_force_delong(y, scores):
    """DeLong et al. (1988) by definition: psi kernel over all positive/negative pairs (O(m n))."""
    y = np.asarray(y)
    comps10, comps01, aucs = [], [], []
    for s in scores:
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        aucs.append(psi.mean())
        comps10.append(psi.mean(axis=1))
        comps01.append(psi.mean(axis=0))
    m, n = (y == 1).sum(), (y == 0).sum()
    return np.array(aucs), np.cov(np.array(comps10)) / m + np.cov(np.array(comps01)) / n


def test_fast_delong_matches_the_definition_and_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    a = np.round(y * 0.8 + rng.normal(0, 1, 300), 1)  # rounding makes ties
    b = np.round(0.6 * a + y * 0.3 + rng.normal(0, 1, 300), 1)
    aucs, cov = delong_covariance(y, np.vstack([a, b]))
    ref_aucs, ref_cov = brute_force_delong(y, np.vstack([a, b]))
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)], abs=1e-12)
    assert aucs == pytest.approx(ref_aucs, abs=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-14)


def test_hanley_mcneil_1982_published_ct_ratings():
    # Hanley & McNeil, Radiology 1982, Table 1: 109 CT images rated 1..5 (58 normal, 51 abnormal); published AUC 0.893,
    # SE 0.032 (their exponential approximation; DeLong's nonparametric SE is close but not the same estimator).
    neg = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    pos = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    y = np.r_[np.zeros(58, int), np.ones(51, int)]
    auc, lo, hi = delong_auc_ci(y, np.r_[neg, pos])
    assert round(auc, 3) == 0.893
    se = (hi - lo) / (2 * norm.ppf(0.975))
    assert se == pytest.approx(0.032, abs=0.002)


def test_hand_computed_small_example():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.3.
    # V10 (per positive, share of negatives beaten) = 1, 1, 0.5; V01 (per negative, share of positives beating it)
    # = 2/3, 1. AUC = 5/6. S10 = var(1, 1, .5) = 1/12; S01 = var(2/3, 1) = 1/18. Var = (1/12)/3 + (1/18)/2 = 1/18.
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.4, 0.7, 0.3])
    aucs, cov = delong_covariance(y, p)
    assert aucs[0] == pytest.approx(5 / 6)
    assert cov[0, 0] == pytest.approx(1 / 36 + 1 / 36)


def test_paired_test_identical_scores_and_a_clearly_better_model():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    good = y * 2.0 + rng.normal(0, 1, 400)
    weak = y * 0.3 + rng.normal(0, 1, 400)
    same = delong_test(y, good, good)
    assert same.difference == 0 and same.p_value == 1.0
    res = delong_test(y, good, weak)
    assert res.auc_a == pytest.approx(roc_auc_score(y, good)) and res.auc_b == pytest.approx(roc_auc_score(y, weak))
    assert res.p_value < 1e-6 and res.ci[0] > 0 and res.z == pytest.approx(res.difference / res.se)
    # correlated scores: pairing shrinks the SE below the unpaired one
    noisy = good + rng.normal(0, 0.3, 400)
    paired = delong_test(y, good, noisy)
    _, cov = delong_covariance(y, np.vstack([good, noisy]))
    assert paired.se < np.sqrt(cov[0, 0] + cov[1, 1]) / 3
    with pytest.raises(DataError, match="same cases"):
        delong_test(y, good, weak[:10])
    with pytest.raises(DataError, match="each class"):
        delong_test(np.ones(5), good[:5], weak[:5])


def test_wilson_against_scipy_and_hand_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # p=.8, z=1.96: centre .7167, half .2266
    for k, n in [(0, 20), (3, 17), (50, 50), (120, 624)]:
        ref = binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
        assert wilson_interval(k, n, 0.9) == pytest.approx((ref.low, ref.high), abs=1e-12)
    lo, hi = wilson_interval(np.array([1, 2]), np.array([4, 8]))
    assert lo.shape == (2,) and lo[0] == pytest.approx(wilson_interval(1, 4)[0])
    ci = proportion_intervals({"tp": 8, "fn": 2, "tn": 30, "fp": 0})
    assert ci["sensitivity"] == pytest.approx(wilson_interval(8, 10)) and "ppv" in ci and ci["specificity"][1] == pytest.approx(1.0)


def test_roc_band_brackets_the_curve():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = y * 1.0 + rng.normal(0, 1, 300)
    grid, lo, hi = roc_ci_band(y, p, n=100)
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    mid = np.interp(grid, fpr, tpr)
    assert np.all(lo <= hi) and np.mean((lo <= mid + 1e-9) & (mid <= hi + 1e-9)) > 0.95
    assert 0.05 < np.mean(hi - lo) < 0.4


def test_roc_band_equals_per_resample_roc_curves():
    from sklearn.metrics import roc_curve

    from medfit.evaluate.metrics import stratified_bootstrap_indices

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = np.round(y + rng.normal(0, 1, 200), 1)  # ties
    grid, lo, hi = roc_ci_band(y, p, n=40, level=0.9, seed=5)
    curves = []
    for idx in stratified_bootstrap_indices(y, 40, 5):
        fpr, tpr, _ = roc_curve(y[idx], p[idx])
        curves.append(np.interp(grid, fpr, tpr))
    np.testing.assert_allclose(lo, np.quantile(curves, 0.05, axis=0), atol=1e-12)
    np.testing.assert_allclose(hi, np.quantile(curves, 0.95, axis=0), atol=1e-12)
