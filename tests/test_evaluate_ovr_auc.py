"""One-vs-rest AUC with CIs: hand-computed bootstrap distribution and DeLong interval, sklearn for the averages."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medfit.evaluate.ovr_auc import column_aucs, ovr_auc_table

# four cases, three classes; class "a" vs rest: positives p_a = {0.9, 0.4}, negatives p_a = {0.5, 0.1}
Y4 = np.array([0, 0, 1, 2])
P4 = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])


def test_per_class_bootstrap_ci_matches_the_enumerated_resample_distribution():
    # Strata are the classes: {row 0, row 1} (class a) is resampled, rows 2 and 3 (alone in their class) never change.
    # So class a's negatives stay {0.5, 0.1} and its positives are drawn from {0.9, 0.4} twice:
    #   {0.9, 0.9} p = 1/4: AUC 1;   {0.9, 0.4} p = 1/2: pairs 0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1 -> 3/4;
    #   {0.4, 0.4} p = 1/4: 0.4 beats 0.1 only -> 1/2.
    # CDF: 0.25 at 0.5, 0.75 at 0.75, 1 at 1; so the 80 % interval (10th, 90th percentiles) is [0.5, 1.0]
    # (400 draws: the shares of 0.5 and of 1 are 0.25 +- 0.02, far from the 0.1 that would move either end).
    r = ovr_auc_table(Y4, P4, ["a", "b", "c"], n_bootstrap=400, level=0.8, seed=3)
    a = r["per_class"]["a"]
    assert a["auc"] == pytest.approx(0.75)
    assert a["auc_ci"] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert (a["positives"], a["negatives"]) == (2, 2)


def test_per_class_delong_ci_by_hand():
    # class a: V10 (share of negatives below each positive) = (1, 0.5); V01 (share of positives above each
    # negative) = (0.5, 1). var = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125, SE = 0.353553.
    # 95 %: 0.75 -+ 1.959964 * 0.353553 = 0.057049 .. 1.442951 -> clipped to 1.
    r = ovr_auc_table(Y4, P4, ["a", "b", "c"], n_bootstrap=0)
    assert r["per_class"]["a"]["auc_delong_ci"] == [pytest.approx(0.057049, abs=1e-5), 1.0]
    assert r["per_class"]["a"]["auc_ci"] == [None, None]


def test_macro_and_weighted_match_sklearn_and_cis_cover_them():
    rng = np.random.default_rng(0)
    y = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    logits = rng.normal(0, 1, (600, 3)) + np.eye(3)[y] * 1.5
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = ovr_auc_table(y, prob, ["a", "b", "c"], n_bootstrap=300)
    assert r["auc_macro"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    assert r["auc_weighted"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="weighted"))
    for key in ("auc_macro", "auc_weighted"):
        lo, hi = r[f"{key}_ci"]
        assert lo < r[key] < hi and hi - lo < 0.06
    # bootstrap and DeLong agree on every class (measured: endpoints within 0.01)
    for name, entry in r["per_class"].items():
        assert entry["auc_ci"] == pytest.approx(entry["auc_delong_ci"], abs=0.012)


def test_multilabel_columns_and_a_one_class_label():
    rng = np.random.default_rng(1)
    Y = rng.integers(0, 2, (300, 3))
    Y[:, 2] = 0  # label z never positive: no AUC, no CI
    prob = np.clip(Y * 0.3 + rng.uniform(0, 0.7, Y.shape), 0, 1)
    r = ovr_auc_table(Y, prob, ["x", "y", "z"], n_bootstrap=200)
    assert r["per_class"]["x"]["auc"] == pytest.approx(roc_auc_score(Y[:, 0], prob[:, 0]))
    assert r["per_class"]["z"]["auc"] is None and "auc_delong_ci" not in r["per_class"]["z"]
    assert r["auc_macro"] == pytest.approx(roc_auc_score(Y[:, :2], prob[:, :2], average="macro"))
    assert np.isnan(column_aucs(Y, prob)[2])
