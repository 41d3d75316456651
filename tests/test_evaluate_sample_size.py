"""AUC CI half-width (Hanley & McNeil 1982) by hand and against the paper; n for a target width; learning curves."""
import math

import pytest

from medfit.errors import ConfigError, DataError
from medfit.evaluate.sample_size import (auc_ci_halfwidth, auc_ci_halfwidth_table, hanley_mcneil_se,
                                         learning_curve_summary, n_for_auc_halfwidth)


def test_halfwidth_by_hand():
    # A = .8, n = 100, prevalence .5 -> 50 positives, 50 negatives
    #   Q1 = .8 / 1.2 = 0.666667 ; Q2 = 2 * .64 / 1.8 = 0.711111
    #   SE^2 = [.8 * .2 + 49 (0.666667 - .64) + 49 (0.711111 - .64)] / 2500 = (0.16 + 1.306667 + 3.484444) / 2500
    #        = 4.951111 / 2500 = 0.00198044 -> SE = 0.044502 ; half-width = 1.959964 * SE = 0.087222
    r = auc_ci_halfwidth(100, 0.5, auc=0.8)
    assert r["se"] == pytest.approx(math.sqrt(4.951111 / 2500), abs=1e-6)
    assert r["halfwidth"] == pytest.approx(0.087222, abs=1e-6)
    assert (r["positives"], r["negatives"]) == (50.0, 50.0)


def test_hanley_mcneil_1982_published_example():
    # Hanley & McNeil, Radiology 1982: 51 abnormal and 58 normal CT images, AUC 0.893, SE 0.032 (this formula)
    assert hanley_mcneil_se(0.893, 51, 58) == pytest.approx(0.032, abs=0.001)


def test_n_for_a_target_halfwidth_is_the_smallest_that_reaches_it():
    r = n_for_auc_halfwidth(0.05, prevalence=0.2, auc=0.8)
    assert r["halfwidth"] <= 0.05 < auc_ci_halfwidth(r["n"] - 1, 0.2, 0.8)["halfwidth"]
    assert r["n"] == 599 and r["target_halfwidth"] == 0.05
    # a narrower target needs more cases; a better model needs fewer
    assert n_for_auc_halfwidth(0.03, 0.2, 0.8)["n"] > 599 > n_for_auc_halfwidth(0.05, 0.2, 0.9)["n"]
    assert [row["auc"] for row in auc_ci_halfwidth_table(624, 0.625)] == [0.7, 0.8, 0.9]


def test_errors():
    with pytest.raises(ConfigError, match="prevalence"):
        auc_ci_halfwidth(100, 1.2)
    with pytest.raises(ConfigError, match="half-width"):
        n_for_auc_halfwidth(0.7, 0.3)
    with pytest.raises(DataError, match="fewer than one case"):
        auc_ci_halfwidth(5, 0.1)


def _curve(*rows):
    return [{"patients": n, "auc": a, "ci": [lo, hi]} for n, a, lo, hi in rows]


def test_learning_curve_rule():
    flat = learning_curve_summary(_curve((100, 0.80, 0.75, 0.85), (400, 0.855, 0.82, 0.89), (200, 0.85, 0.80, 0.90)))
    # last step 200 -> 400 patients: (0.855 - 0.85) / log2(2) = 0.005 < 0.01 per doubling, CIs overlap
    assert flat["flattened"] is True and flat["gain_per_doubling"] == pytest.approx(0.005)
    rising = learning_curve_summary(_curve((100, 0.70, 0.65, 0.75), (200, 0.78, 0.74, 0.82), (800, 0.90, 0.88, 0.92)))
    # 200 -> 800 = two doublings: (0.90 - 0.78) / 2 = 0.06 per doubling; CIs [.74, .82] and [.88, .92] apart
    assert rising["flattened"] is False and rising["gain_per_doubling"] == pytest.approx(0.06)
    assert rising["ci_overlap"] is False and "CIs apart" in rising["message"]
    assert learning_curve_summary(_curve((100, 0.8, 0.7, 0.9), (200, 0.8, 0.7, 0.9)))["flattened"] is None
    with pytest.raises(DataError, match="distinct"):
        learning_curve_summary(_curve((100, 0.8, 0.7, 0.9), (100, 0.8, 0.7, 0.9)))
