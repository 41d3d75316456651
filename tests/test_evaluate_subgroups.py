"""Subgroup table and gap tests against hand-computed DeLong variances, chi-square and Fisher values."""
import numpy as np
import pytest
from scipy.stats import chi2, norm

from medfit.errors import DataError
from medfit.evaluate.subgroups import auc_gap, proportion_test, subgroup_table


def test_unpaired_delong_gap_by_hand():
    # group A: positives .9 .7 .4, negatives .5 .2 ; group B: positives .6 .3, negatives .5 .4 .1
    p = np.array([0.9, 0.7, 0.4, 0.5, 0.2, 0.6, 0.3, 0.5, 0.4, 0.1])
    y = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 0])
    g = np.array(["A"] * 5 + ["B"] * 5)
    # A: per positive, share of negatives below: 1, 1, .5 ; per negative, share of positives above: 2/3, 1
    #    AUC 5/6; V = var(1,1,.5)/3 + var(2/3,1)/2 = (1/12)/3 + (1/18)/2 = 1/36 + 1/36 = 1/18
    # B: per positive: 1, 1/3 ; per negative: .5, .5, 1 ; AUC 2/3; V = var(1,1/3)/2 + var(.5,.5,1)/3 = (2/9)/2 + (1/12)/3
    v_a, v_b = 1 / 18, 1 / 9 + 1 / 36
    z = (5 / 6 - 2 / 3) / np.sqrt(v_a + v_b)  # = 0.377964
    gap = auc_gap(y, p, g)
    assert (gap["highest"], gap["lowest"]) == ("A", "B")
    assert gap["difference"] == pytest.approx(1 / 6) and gap["z"] == pytest.approx(z)
    assert z == pytest.approx(0.377964, abs=1e-6)
    assert gap["p_value"] == pytest.approx(2 * norm.sf(z)) and gap["p_value_bonferroni"] == gap["p_value"]  # one pair


def test_proportion_tests_by_hand():
    # [[40, 10], [20, 20]]: rows 50/40, columns 60/30, n 90 -> expected [[33.3, 16.7], [26.7, 13.3]], all >= 5
    # chi2 = (20/3)^2 (1/33.33 + 1/16.67 + 1/26.67 + 1/13.33) = 44.44 * 0.2025 = 9.0
    pval, test, stat = proportion_test(np.array([[40, 10], [20, 20]]))
    assert stat == pytest.approx(9.0) and pval == pytest.approx(chi2.sf(9.0, 1)) and test.startswith("Pearson")
    # [[5, 0], [2, 3]]: an expected count < 5 -> Fisher. Margins 5/5 and 7/3; P(a) = C(5,a) C(5,7-a) / C(10,7):
    # a = 2..5 -> 10, 50, 50, 10 (/120); two-sided p = P(a=5) + P(a=2) = 20/120
    pval, test, stat = proportion_test(np.array([[5, 0], [2, 3]]))
    assert pval == pytest.approx(1 / 6) and test == "Fisher exact test" and stat is None


def _two_sites():
    # site A: 50 positives (40 called positive at .5), 30 negatives (24 called negative)
    # site B: 40 positives (20 called), 30 negatives (15 called negative); site C: 6 positives, 20 negatives
    def block(pos_hit, pos_miss, neg_hit, neg_miss):
        y = np.r_[np.ones(pos_hit + pos_miss), np.zeros(neg_hit + neg_miss)]
        p = np.r_[np.linspace(0.6, 0.95, pos_hit), np.linspace(0.1, 0.45, pos_miss),
                  np.linspace(0.05, 0.4, neg_hit), np.linspace(0.55, 0.9, neg_miss)]
        return y, p
    parts = {"A": block(40, 10, 24, 6), "B": block(20, 20, 15, 15), "C": block(5, 1, 18, 2)}
    y = np.concatenate([v[0] for v in parts.values()])
    p = np.concatenate([v[1] for v in parts.values()])
    g = np.concatenate([[k] * len(v[0]) for k, v in parts.items()])
    return y, p, g


def test_subgroup_table_counts_gaps_and_small_group_warning():
    y, p, g = _two_sites()
    t = subgroup_table(y, p, g, threshold=0.5, n_boot=50)
    rows = {r["group"]: r for r in t["groups"]}
    a = rows["A"]
    assert (a["n"], a["positives"], a["tp"], a["fn"], a["tn"], a["fp"]) == (80, 50, 40, 10, 24, 6)
    assert a["prevalence"] == pytest.approx(50 / 80) and a["sensitivity"] == pytest.approx(0.8)
    assert a["specificity"] == pytest.approx(0.8) and a["auc_ci"][0] <= a["auc"] <= a["auc_ci"][1]
    # sensitivities A .8, B .5, C 5/6: largest gap C vs B; table [[5, 1], [20, 20]] has an expected count < 5 -> Fisher
    sens = t["gaps"]["sensitivity"]
    assert (sens["highest"], sens["lowest"], sens["table"]) == ("C", "B", [[5, 1], [20, 20]])
    assert sens["test"] == "Fisher exact test" and sens["difference"] == pytest.approx(5 / 6 - 0.5)
    assert sens["p_value_bonferroni"] == pytest.approx(min(1.0, 3 * sens["p_value"]))  # 3 groups -> 3 pairs
    # specificities A .8, B .5, C .9: C vs B, [[18, 2], [15, 15]]: expected (33 x 20 / 50 = 13.2, ..., 17 x 20 / 50 = 6.8)
    spec = t["gaps"]["specificity"]
    assert spec["table"] == [[18, 2], [15, 15]] and spec["test"].startswith("Pearson")
    assert spec["statistic"] == pytest.approx(_chi2([[18, 2], [15, 15]]))
    # C has 6 positives (< 10): the only warning
    assert t["warnings"] == [rows["C"]["warning"]] and "6 positives and 20 negatives" in rows["C"]["warning"]
    assert rows["A"]["warning"] is None and t["gaps"]["auc"]["groups_compared"] == 3
    assert -5 < a["intercept"] < 5 and np.isfinite(a["slope"])


def _chi2(table):
    t = np.array(table, float)
    e = t.sum(1, keepdims=True) * t.sum(0, keepdims=True) / t.sum()
    return float(((t - e) ** 2 / e).sum())


def test_subgroups_reject_mismatched_inputs():
    with pytest.raises(DataError, match="one label, probability and group"):
        subgroup_table(np.array([0, 1]), np.array([0.2, 0.8]), ["a"], 0.5)
