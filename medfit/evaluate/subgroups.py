"""Performance per subgroup (site, sex, age band, scanner) of a binary model, and the largest gap between groups.

Per group (fairlearn's MetricFrame): n, positives, prevalence, AUC, sensitivity and specificity at the carried
threshold, with stratified-bootstrap CIs, plus the calibration slope and intercept. Gap tests compare the best and
the worst group: AUC by an unpaired DeLong z-test (independent groups: the variances add), sensitivity and
specificity by Pearson's chi-square on the 2x2 table (Fisher's exact test when an expected count is below 5). The
pair is chosen after looking, so a Bonferroni p-value over all G(G-1)/2 pairs is given as well.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from scipy.stats import chi2_contingency, fisher_exact, norm

from medfit.errors import DataError
from medfit.evaluate.calibration import calibration_slope_intercept
from medfit.evaluate.metrics import auc, bootstrap_ci, confusion_counts, fast_binary_metrics
from medfit.evaluate.stats import delong_covariance

MIN_CLASS = 10
SMALL_GROUP_RULE = ("fewer than {k} positives or fewer than {k} negatives: the AUC CI and sensitivity/specificity are "
                    "too wide to inform")


def _point_metrics(threshold: float) -> dict:
    """MetricFrame metrics: each takes (y_true, y_pred = probability) of one group."""
    def count(key):
        return lambda y, p: confusion_counts(y, p, threshold)[key]

    m = fast_binary_metrics(threshold)
    return {"n": lambda y, p: len(y), "positives": lambda y, p: int(np.sum(y)),
            "prevalence": lambda y, p: float(np.mean(y)), "auc": auc, "sensitivity": lambda y, p: m(y, p)["sensitivity"],
            "specificity": lambda y, p: m(y, p)["specificity"], **{k: count(k) for k in ("tp", "fn", "tn", "fp")}}


def subgroup_table(y: np.ndarray, p: np.ndarray, groups, threshold: float, n_boot: int = 200, level: float = 0.95,
                   seed: int = 0, min_class: int = MIN_CLASS) -> dict:
    """Per-group rows, the largest AUC / sensitivity / specificity gaps with their tests, and small-group warnings."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    groups = np.asarray(groups).astype(str)
    if not (len(y) == len(p) == len(groups)) or len(y) == 0:
        raise DataError(f"subgroups need one label, probability and group per case ({len(y)}, {len(p)}, {len(groups)})")
    frame = MetricFrame(metrics=_point_metrics(threshold), y_true=y, y_pred=p,
                        sensitive_features=pd.Series(groups, name="group"))
    rows = [_group_row(name, values, y[groups == name], p[groups == name], threshold, n_boot, level, seed, min_class)
            for name, values in frame.by_group.to_dict("index").items()]
    return {"threshold": float(threshold), "ci_level": level, "bootstrap": n_boot, "min_class": min_class,
            "small_group_rule": SMALL_GROUP_RULE.format(k=min_class), "groups": rows,
            "gaps": {"auc": auc_gap(y, p, groups, level), "sensitivity": proportion_gap(rows, "tp", "fn"),
                     "specificity": proportion_gap(rows, "tn", "fp")},
            "warnings": [r["warning"] for r in rows if r["warning"]]}


def _group_row(name: str, values: dict, y: np.ndarray, p: np.ndarray, threshold: float, n_boot: int, level: float,
               seed: int, min_class: int) -> dict:
    row = {"group": str(name)}
    for key, value in values.items():
        row[key] = int(value) if key in ("n", "positives", "tp", "fn", "tn", "fp") else float(value)
    both = 0 < y.sum() < len(y)
    ci = bootstrap_ci(fast_binary_metrics(threshold), y, p, n_boot, level, seed) if n_boot and both else {}
    for key in ("auc", "sensitivity", "specificity"):
        row[f"{key}_ci"] = list(ci[key]) if key in ci else None
    cal = calibration_slope_intercept(y, p, level)
    row.update({k: cal[k] for k in ("slope", "slope_ci", "intercept", "intercept_ci")})
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    small = pos < min_class or neg < min_class
    row["warning"] = (f"group {name!r}: {pos} positives and {neg} negatives (fewer than {min_class} of a class): its "
                      "AUC CI and sensitivity/specificity are too wide to inform") if small else None
    return row


def _pairs(k: int) -> int:
    return max(k * (k - 1) // 2, 1)


def auc_gap(y: np.ndarray, p: np.ndarray, groups: np.ndarray, level: float = 0.95) -> dict | None:
    """Highest minus lowest group AUC, unpaired DeLong z-test: z = (A1 - A2) / sqrt(V1 + V2)."""
    stats = {}
    for g in sorted(set(groups.tolist())):
        yg = y[groups == g]
        if 0 < yg.sum() < len(yg):
            aucs, cov = delong_covariance(yg, p[groups == g])
            stats[g] = (float(aucs[0]), float(cov[0, 0]))
    if len(stats) < 2:
        return None
    hi, lo = max(stats, key=lambda g: stats[g][0]), min(stats, key=lambda g: stats[g][0])
    diff, se = stats[hi][0] - stats[lo][0], float(np.sqrt(stats[hi][1] + stats[lo][1]))
    if se > 0:
        z, pval = diff / se, float(2 * norm.sf(abs(diff / se)))
    else:  # both groups perfectly separated (or constant): no sampling variance to test against
        z, pval = (0.0, 1.0) if diff == 0 else (float("inf"), 0.0)
    q = norm.ppf(0.5 + level / 2)
    return {"highest": hi, "lowest": lo, "difference": diff, "ci": [diff - q * se, diff + q * se], "se": se,
            "z": float(z), "p_value": pval, "p_value_bonferroni": min(1.0, pval * _pairs(len(stats))),
            "test": "unpaired DeLong z-test", "groups_compared": len(stats)}


def proportion_gap(rows: list[dict], hit: str, miss: str) -> dict | None:
    """Highest minus lowest group proportion hit / (hit + miss) with a 2x2 chi-square (Fisher when expected < 5)."""
    usable = [r for r in rows if r[hit] + r[miss] > 0]
    if len(usable) < 2:
        return None
    rate = {r["group"]: r[hit] / (r[hit] + r[miss]) for r in usable}
    hi, lo = max(usable, key=lambda r: rate[r["group"]]), min(usable, key=lambda r: rate[r["group"]])
    table = np.array([[hi[hit], hi[miss]], [lo[hit], lo[miss]]])
    pval, test, stat = proportion_test(table)
    return {"highest": hi["group"], "lowest": lo["group"], "difference": rate[hi["group"]] - rate[lo["group"]],
            "table": table.tolist(), "test": test, "statistic": stat, "p_value": pval,
            "p_value_bonferroni": min(1.0, pval * _pairs(len(usable))), "groups_compared": len(usable)}


def proportion_test(table: np.ndarray) -> tuple[float, str, float | None]:
    """(p-value, test name, chi-square statistic) for a 2x2 table [[hit, miss], [hit, miss]]."""
    table = np.asarray(table)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / max(table.sum(), 1)
    if expected.min() < 5:
        return float(fisher_exact(table).pvalue), "Fisher exact test", None
    res = chi2_contingency(table, correction=False)
    return float(res.pvalue), "Pearson chi-square (1 df, no continuity correction)", float(res.statistic)
