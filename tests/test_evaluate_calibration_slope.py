"""Calibration slope and intercept by logistic recalibration: hand-computed tables, and before/after temperature scaling."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit

from medfit.evaluate.calibration import calibration_slope_intercept, recalibration_summary

# two risk groups: p = 0.2 for 10 cases (3 events), p = 0.6 for 10 cases (8 events)
Y = np.r_[np.zeros(7), np.ones(3), np.zeros(2), np.ones(8)]
P = np.r_[np.full(10, 0.2), np.full(10, 0.6)]


def test_slope_by_hand_on_two_risk_groups():
    # two distinct logit(p) values: the fit y ~ a + b logit(p) is saturated, so it reproduces each group's event rate
    #   b = (logit(.8) - logit(.3)) / (logit(.6) - logit(.2)) = (1.386294 + 0.847298) / (0.405465 + 1.386294) = 1.246592
    r = calibration_slope_intercept(Y, P)
    assert r["slope"] == pytest.approx((logit(0.8) - logit(0.3)) / (logit(0.6) - logit(0.2)), abs=1e-6)
    assert r["slope"] == pytest.approx(1.246592, abs=1e-6)
    assert r["slope_ci"][0] < r["slope"] < r["slope_ci"][1] and r["n"] == 20
    # calibration-in-the-large: the a with logit(p) as offset solves sum(y) = sum(expit(a + logit(p))):
    #   11 = 10 expit(a + logit(.2)) + 10 expit(a + logit(.6))
    a = brentq(lambda a: 10 * expit(a + logit(0.2)) + 10 * expit(a + logit(0.6)) - 11, -5, 5)
    assert r["intercept"] == pytest.approx(a, abs=1e-6)
    assert r["intercept"] == pytest.approx(0.733868, abs=1e-5)


def test_intercept_with_a_constant_prediction_is_the_log_odds_gap():
    # p = 0.2 for everyone, 7 events in 20: intercept = logit(0.35) - logit(0.2) = -0.619039 + 1.386294 = 0.767255
    y = np.r_[np.ones(7), np.zeros(13)]
    r = calibration_slope_intercept(y, np.full(20, 0.2))
    assert r["intercept"] == pytest.approx(logit(0.35) - logit(0.2), abs=1e-6)
    assert math.isnan(r["slope"])  # logit(p) has no spread: no slope


def test_degenerate_tables_give_nan_not_nonsense():
    assert math.isnan(calibration_slope_intercept([1, 1, 1, 1], [0.2, 0.4, 0.6, 0.8])["slope"])
    sep = calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])  # perfect separation: slope is infinite
    assert math.isnan(sep["slope"]) and math.isnan(sep["slope_ci"][0])
    assert sep["intercept"] == pytest.approx(0.0, abs=1e-9)  # symmetric predictions, half events


def test_overconfident_model_slope_and_recovery_by_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 8000)
    y = (rng.uniform(size=z.size) < expit(z)).astype(int)
    honest = calibration_slope_intercept(y, expit(z))
    assert honest["slope_ci"][0] < 1 < honest["slope_ci"][1] and honest["intercept_ci"][0] < 0 < honest["intercept_ci"][1]
    p = expit(3 * z)  # three times too confident: slope 1/3
    r = recalibration_summary(y[:4000], p[:4000], y[4000:], p[4000:])
    assert r["before"]["slope"] == pytest.approx(1 / 3, abs=0.03)
    assert r["temperature"] == pytest.approx(3.0, rel=0.1)
    assert r["after_temperature"]["slope"] == pytest.approx(1.0, abs=0.1)
    assert abs(r["after_temperature"]["intercept"]) < 0.1
