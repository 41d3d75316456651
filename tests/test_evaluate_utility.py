"""Decision curves: dcurves' net benefit against the formula NB = TP/n - FP/n * pt/(1-pt) on a hand table and at scale."""
import numpy as np
import pytest

from medfit.errors import ConfigError, DataError
from medfit.evaluate.utility import decision_curve, net_benefit, net_benefit_at, threshold_grid

Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.7, 0.35, 0.15, 0.6, 0.3, 0.25, 0.1, 0.05, 0.4])


def test_net_benefit_by_hand():
    # pt = 0.2: called positive p >= .2 -> positives .9 .7 .35 (TP 3), negatives .6 .3 .25 .4 (FP 4)
    #   NB = 3/10 - 4/10 * .2/.8 = 0.3 - 0.1 = 0.2 ; treat all = 4/10 - 6/10 * .25 = 0.25 ; treat none = 0
    # pt = 0.5: TP 2 (.9 .7), FP 1 (.6): NB = 0.2 - 0.1 * 1 = 0.1 ; treat all = 0.4 - 0.6 = -0.2
    assert net_benefit(Y, P, 0.2) == pytest.approx(0.2) and net_benefit(Y, P, 0.5) == pytest.approx(0.1)
    c = decision_curve(Y, P, thresholds=[0.2, 0.5])
    assert c["net_benefit"]["model"] == pytest.approx([0.2, 0.1])
    assert c["net_benefit"]["treat_all"] == pytest.approx([0.25, -0.2])
    assert c["net_benefit"]["treat_none"] == [0.0, 0.0]
    # net interventions avoided per 100 = 100 (NB - NB_all) / (pt / (1 - pt)): at .5 -> 100 * 0.3 / 1 = 30
    assert c["interventions_avoided_per_100"][1] == pytest.approx(30.0)
    assert c["useful_ranges"] == [[0.5, 0.5]] and c["prevalence"] == 0.4


def test_dcurves_matches_the_formula_over_the_default_grid():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.beta(2, 3, 500), 0, 1)
    c = decision_curve(y, p)
    assert c["thresholds"] == pytest.approx(np.round(np.arange(0.01, 0.995, 0.01), 6).tolist())
    formula = [net_benefit(y, p, t) for t in c["thresholds"]]
    np.testing.assert_allclose(c["net_benefit"]["model"], formula, atol=1e-12)
    prev = y.mean()
    np.testing.assert_allclose(c["net_benefit"]["treat_all"], [prev - (1 - prev) * t / (1 - t) for t in c["thresholds"]],
                               atol=1e-12)
    rows = net_benefit_at(c, (0.1, 0.3))
    assert [r["threshold"] for r in rows] == [0.1, 0.3] and rows[1]["model"] == pytest.approx(net_benefit(y, p, 0.3))


def test_threshold_and_label_errors():
    assert threshold_grid(0.05, 0.5, 0.05).tolist() == pytest.approx([0.05 * k for k in range(1, 11)])
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        threshold_grid(0.0, 0.5, 0.1)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        decision_curve(Y, P, thresholds=[0.5, 1.0])
    with pytest.raises(DataError, match="0/1 labels"):
        decision_curve(np.array([0, 2]), np.array([0.1, 0.9]))
