"""Calibration metrics against scikit-learn and hand values; temperature scaling recovers a known temperature."""
import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss

from medfit.evaluate.calibration import (apply_temperature, brier_score, calibration_metrics,
                                         expected_calibration_error, fit_temperature, reliability_curve)


def test_brier_and_ece_hand_values():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.2, 0.6, 1.0, 0.05])
    assert brier_score(y, p) == pytest.approx((0.04 + 0.16 + 0 + 0.0025) / 4)
    # 2 bins: (0, .5] holds .2, .05 (mean .125, rate 0); (.5, 1] holds .6, 1.0 (mean .8, rate 1) -> ECE = (.125 + .2) / 2
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((0.125 + 0.2) / 2)
    perfect = np.r_[np.zeros(8), np.ones(2)]
    assert expected_calibration_error(perfect, np.full(10, 0.2), 10) == pytest.approx(0.0)


def test_reliability_curve_matches_sklearn():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 2000)
    y = (rng.uniform(0, 1, 2000) < p**1.5).astype(int)
    curve = reliability_curve(y, p, n_bins=8)
    frac, mean = calibration_curve(y, p, n_bins=8, strategy="uniform")
    np.testing.assert_allclose(curve["fraction_positive"], frac, atol=1e-12)
    np.testing.assert_allclose(curve["mean_predicted"], mean, atol=1e-12)
    assert curve["count"].sum() == 2000
    m = calibration_metrics(y, p, 8)
    assert m["ece"] > 0.05 and set(m["reliability"]) >= {"mean_predicted", "fraction_positive", "count"}


def test_temperature_scaling_recovers_an_overconfident_binary_model():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, 20000)
    y = (rng.uniform(size=z.size) < expit(z)).astype(int)
    p = expit(3.0 * z)  # the "model" is three times too confident
    t = fit_temperature(y[:10000], p[:10000])
    assert t == pytest.approx(3.0, rel=0.1)
    q = apply_temperature(p[10000:], t)
    assert expected_calibration_error(y[10000:], q) < expected_calibration_error(y[10000:], p[10000:]) / 3
    assert log_loss(y[10000:], q) < log_loss(y[10000:], p[10000:])
    assert np.array_equal(np.argsort(q), np.argsort(p[10000:]))  # ranking (AUC) unchanged


def test_temperature_scaling_multiclass():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1.2, (6000, 3))
    y = np.array([rng.choice(3, p=row) for row in softmax(logits, axis=1)])
    p = softmax(logits / 0.5, axis=1)  # under-smoothed: T = 0.5 too sharp -> fitted T about 2
    t = fit_temperature(y, p, "multiclass")
    assert t == pytest.approx(2.0, rel=0.1)
    q = apply_temperature(p, t, "multiclass")
    assert q.sum(axis=1) == pytest.approx(np.ones(len(q)))
    assert log_loss(y, q) < log_loss(y, p)


def test_evaluate_predictions_adds_calibration_wilson_delong_and_sites():
    import pandas as pd

    from medfit.config import config_from_dict
    from medfit.evaluate.run import evaluate_predictions
    from medfit.evaluate.stats import delong_auc_ci, wilson_interval

    rng = np.random.default_rng(4)
    n = 600
    y = rng.integers(0, 2, n)
    p = expit(3 * (y - 0.5) + rng.normal(0, 1.5, n))
    pred = pd.DataFrame({"image": [f"i{k}" for k in range(n)], "label": y, "prob": p,
                         "split": np.repeat(["val", "test", "external"], n // 3),
                         "site": np.repeat(["a", "a", "b"], n // 3)})
    cfg = config_from_dict({"data": {"task": "binary"}, "evaluate": {"bootstrap": 20, "temperature_scaling": True}})
    m = evaluate_predictions(pred, cfg)
    test = m["splits"]["test"]
    part = pred[pred["split"] == "test"]
    assert test["calibration"]["brier"] == pytest.approx(brier_score(part["label"], part["prob"]))
    assert m["temperature"]["fitted_on"] == "val" and "calibration_scaled" in test
    c = test["confusion"]
    assert test["wilson_ci"]["sensitivity"] == pytest.approx(list(wilson_interval(c["tp"], c["tp"] + c["fn"])))
    assert test["auc_delong_ci"] == pytest.approx(list(delong_auc_ci(part["label"], part["prob"])[1:]))
    assert [(r["split"], r["site"]) for r in m["sites"]] == [("val", "a"), ("test", "a"), ("external", "b")]
