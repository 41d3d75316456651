"""Uncertainty and referral: hand-computed entropy, ensemble spread, risk-coverage table, seed summaries; real data."""
import math

import numpy as np
import pytest

from medfit.errors import ConfigError, DataError
from medfit.evaluate.referral import (case_uncertainty, ensemble_probs, format_mean_sd, member_spread,
                                      mutual_information, predictive_entropy, retained_metrics, risk_coverage,
                                      seed_summary)


def test_entropy_spread_and_mutual_information_by_hand():
    # binary entropy / log 2: p = .5 -> 1; p = .9 -> -(.9 ln .9 + .1 ln .1) / ln 2 = 0.468996
    assert predictive_entropy(np.array([0.5, 0.9, 1.0])) == pytest.approx([1.0, 0.468996, 0.0], abs=1e-6)
    # three classes, uniform -> 1
    assert predictive_entropy(np.array([[1 / 3] * 3])) == pytest.approx([1.0])
    members = np.array([[0.9, 0.6], [0.1, 0.8]])  # 2 members x 2 cases
    e = ensemble_probs(members)
    # case 1: mean .5, sd (ddof 1) = |.9 - .1| / sqrt(2) = 0.565685 ; case 2: mean .7, sd .2 / sqrt(2) = 0.141421
    assert e["mean"] == pytest.approx([0.5, 0.7]) and e["sd"] == pytest.approx([0.565685, 0.141421], abs=1e-6)
    assert member_spread(members) == pytest.approx(e["sd"])
    # mutual information, case 1: H(.5) - mean(H(.9), H(.1)) = 1 - 0.468996 = 0.531004 (members disagree)
    assert mutual_information(members)[0] == pytest.approx(0.531004, abs=1e-6)
    assert case_uncertainty(members=members, kind="sd") == pytest.approx(e["sd"])
    with pytest.raises(DataError, match="needs ensemble members"):
        case_uncertainty(prob=np.array([0.5]), kind="sd")
    with pytest.raises(ConfigError, match="unknown"):
        case_uncertainty(prob=np.array([0.5]), kind="variance")


def test_risk_coverage_table_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.1, 0.2, 0.55, 0.45, 0.4, 0.6, 0.7, 0.3])
    u = predictive_entropy(p)  # most uncertain: .55 (row 4), .45 (row 5), then .4 (6) and .6 (7) tie
    # threshold .5: wrong are row 6 (p .4, y 1) and row 7 (p .6, y 0) -> accuracy 8/10 with nobody referred
    assert retained_metrics(y, p, u, 0.0)["accuracy"] == pytest.approx(0.8)
    # refer 20 % = 2 cases (rows 4 and 5, both right): 6 right of 8 -> 0.75
    r20 = retained_metrics(y, p, u, 0.2)
    assert (r20["referred"], r20["retained"], r20["accuracy"]) == (2, 8, 0.75)
    # retained AUC at 20 %: positives .9 .8 .4 .7 ; negatives .1 .2 .6 .3 -> pairs won: .9:4 .8:4 .4:3 .7:4 = 15/16
    assert r20["auc"] == pytest.approx(15 / 16)
    # 40 % = 4 cases: rows 4, 5, then the tie .4/.6 goes to the earlier row 6 then row 7 -> 6 of 6 right
    assert retained_metrics(y, p, u, 0.4)["accuracy"] == 1.0
    rc = risk_coverage(y, p, u, report_rates=(0.2,), max_rate=0.4, step=0.1)
    assert rc["at"][0]["accuracy"] == 0.75 and rc["curve"]["referral_rate"] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    # AURC: errors ranked from the most certain: rows 0,2 (.9,.1), 1,3 (.8,.2), 8,9 (.7,.3), 6 (.4, wrong), 7 (.6, wrong),
    # 4, 5 -> errors 0,0,0,0,0,0,1,1,0,0; risk at coverage k = cumsum / k: six 0s, 1/7, 2/8, 2/9, 2/10
    assert rc["aurc"] == pytest.approx((1 / 7 + 2 / 8 + 2 / 9 + 2 / 10) / 10)
    assert rc["aurc_random"] == pytest.approx(0.2)


def test_multiclass_referral_uses_argmax_and_macro_auc():
    prob = np.array([[0.8, 0.1, 0.1], [0.4, 0.35, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]])
    y = np.array([0, 1, 1, 2, 2])
    r = retained_metrics(y, prob, predictive_entropy(prob), 0.4)  # refers the two flattest rows (1 and 4, both wrong)
    assert (r["retained"], r["accuracy"], r["auc"]) == (3, 1.0, 1.0)


def test_seed_summary_by_hand():
    runs = [{"auc": 0.90, "split": "test", "ci": [0.8, 0.95], "cal": {"ece": 0.02}},
            {"auc": 0.92, "cal": {"ece": 0.04}}, {"auc": 0.94, "cal": {"ece": None}}]
    s = seed_summary(runs)
    # mean .92, sd (ddof 1) = sqrt(((-.02)^2 + 0 + .02^2) / 2) = 0.02
    assert s["auc"] == {"mean": pytest.approx(0.92), "sd": pytest.approx(0.02), "n": 3}
    assert s["cal"]["ece"] == {"mean": pytest.approx(0.03), "sd": pytest.approx(math.sqrt(2) * 0.01), "n": 2}
    assert "split" not in s and "ci" not in s
    assert format_mean_sd(s["auc"]) == "0.920 +- 0.020 (n = 3)"


def test_referral_on_pneumoniamnist(shared_data):
    from pmnist_probs import pneumonia_probabilities

    y, p = pneumonia_probabilities(shared_data)["val"]
    rc = risk_coverage(y, p, predictive_entropy(p))
    acc = [row["accuracy"] for row in rc["at"]]
    # measured 0.968, 0.970, 0.983 at 5/10/20 % referral (0.950 with nobody referred); AURC 0.008 vs 0.050
    assert rc["curve"]["accuracy"][0] < acc[0] <= acc[1] <= acc[2]
    assert [row["referred"] for row in rc["at"]] == [26, 52, 105]  # 5/10/20 % of 524, rounded half up
    assert rc["aurc"] < rc["aurc_random"] / 3
