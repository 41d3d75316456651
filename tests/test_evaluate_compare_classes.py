"""Per-class paired DeLong with Holm correction, and the paired bootstrap of the macro AUC difference."""
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.evaluate.compare_classes import compare_class_aucs, holm_adjust, paired_macro_auc_bootstrap
from medfit.evaluate.stats import delong_test


def _two_models(n=400, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    strong = rng.normal(0, 1, (n, k)) + np.eye(k)[y] * 1.5
    weak = rng.normal(0, 1, (n, k)) + np.eye(k)[y] * 0.7
    soft = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
    return y, soft(strong), soft(weak)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, max(0.06, 1 * 0.04) = 0.06
    assert holm_adjust([0.01, 0.04, 0.03, np.nan]) == pytest.approx([0.03, 0.06, 0.06, np.nan], nan_ok=True)
    assert holm_adjust([0.6, 0.5]) == pytest.approx([1.0, 1.0])


def test_per_class_delong_equals_stats_delong_test():
    y, a, b = _two_models()
    r = compare_class_aucs(y, a, b, ["x", "y", "z"], n_bootstrap=200)
    raw = [delong_test(y == k, a[:, k], b[:, k]).p_value for k in range(3)]
    for k, name in enumerate("xyz"):
        ref = delong_test(y == k, a[:, k], b[:, k]).to_dict()
        assert r["per_class"][name]["difference"] == pytest.approx(ref["difference"])
        assert r["per_class"][name]["p_value"] == pytest.approx(ref["p_value"])
    assert [r["per_class"][n]["p_holm"] for n in "xyz"] == pytest.approx(list(holm_adjust(raw)))
    assert r["macro"]["difference"] > 0.1 and r["macro"]["ci"][0] > 0 and r["macro"]["p_value"] < 0.001


def test_two_class_macro_bootstrap_agrees_with_delong():
    # with two classes both one-vs-rest AUCs equal the binary AUC, so the macro difference is the binary difference
    y, a, b = _two_models(n=400, k=2, seed=1)
    ref = delong_test(y, a[:, 1], b[:, 1])
    r = paired_macro_auc_bootstrap(y, a, b, n_bootstrap=1000, seed=0)
    assert r["difference"] == pytest.approx(ref.difference)
    assert r["se"] == pytest.approx(ref.se, rel=0.15)  # measured: bootstrap SE / DeLong SE = 0.97
    assert r["ci"] == pytest.approx(list(ref.ci), abs=0.02)


def test_identical_runs_and_mismatched_shapes():
    y, a, _ = _two_models(n=60)
    r = paired_macro_auc_bootstrap(y, a, a, n_bootstrap=50)
    assert r["difference"] == 0 and r["ci"] == [0, 0] and r["p_value"] == 1.0
    with pytest.raises(DataError, match="same cases"):
        paired_macro_auc_bootstrap(y, a, a[:-1])
