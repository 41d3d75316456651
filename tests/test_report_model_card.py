"""Model card and TRIPOD+AI checklist: every number comes from the dicts passed in; unknowns are marked for the authors."""
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from medfit.config import config_from_dict, config_to_dict
from medfit.evaluate.calibration import calibration_metrics, calibration_slope_intercept, recalibration_summary
from medfit.evaluate.conformal import conformal_evaluation
from medfit.evaluate.metrics import bootstrap_ci, fast_binary_metrics
from medfit.evaluate.referral import predictive_entropy, risk_coverage
from medfit.evaluate.sample_size import auc_ci_halfwidth
from medfit.evaluate.subgroups import subgroup_table
from medfit.evaluate.utility import decision_curve
from medfit.report.model_card import TBC, inclusion_counts, model_card
from medfit.report.tripod_ai import ITEMS, tripod_ai_checklist

THRESHOLD = 0.4321


@pytest.fixture(scope="module")
def run():
    """A binary run's dicts, its evidence sections computed by the evaluate functions on simulated predictions."""
    rng = np.random.default_rng(7)
    splits = {}
    for name, n, shift in (("val", 300, 0.0), ("test", 400, 0.6)):
        y = rng.integers(0, 2, n)
        splits[name] = (y, expit(2.5 * (y - 0.5) + rng.normal(shift, 1.2, n)))  # test: risks too high
    metrics = {"task": "binary", "ci_level": 0.95, "bootstrap": 40, "splits": {},
               "threshold": {"method": "youden", "value": THRESHOLD, "chosen_on": "val"}}
    for name, (y, p) in splits.items():
        m = fast_binary_metrics(THRESHOLD)
        entry = {"n": len(y), "positives": int(y.sum()), **m(y, p)}
        entry.update({f"{k}_ci": list(v) for k, v in bootstrap_ci(m, y, p, 40).items()})
        entry["calibration"] = {**calibration_metrics(y, p), **calibration_slope_intercept(y, p)}
        metrics["splits"][name] = entry
    (yv, pv), (yt, pt) = splits["val"], splits["test"]
    sites = np.where(np.arange(len(yt)) % 40 == 0, "small", "main")
    metrics.update({"recalibration": recalibration_summary(yv, pv, yt, pt),
                    "conformal": conformal_evaluation(pv, yv, pt, yt, 0.1, groups=sites),
                    "referral": risk_coverage(yt, pt, predictive_entropy(pt)),
                    "subgroups": {"site": subgroup_table(yt, pt, sites, THRESHOLD, n_boot=40)},
                    "sample_size": auc_ci_halfwidth(len(yt), float(yt.mean()), metrics["splits"]["test"]["auc"])})
    metrics["splits"]["test"]["decision_curve"] = decision_curve(yt, pt)
    config = config_to_dict(config_from_dict({"name": "card-run", "data": {"class_names": ["normal", "pneumonia"]}}))
    manifest = pd.DataFrame({"split": ["train"] * 5 + ["val"] * 3 + ["test"] * 2, "label": [0, 1, 1, 1, 0, 0, 1, 1, 1, 0],
                             "patient_id": ["a", "a", "b", "c", "d", "e", "e", "f", "g", "h"],
                             "site": ["s1"] * 4 + ["s2"] * 6})
    counts = inclusion_counts(manifest, class_names=["normal", "pneumonia"])
    audit = {"summary": "audit of 10 images: 1 duplicate group", "ok": True, "errors": [],
             "warnings": ["1 group(s) of duplicate images within one split"]}
    train_info = {"parameters": {"trainable": 11170753, "total": 11170753},
                  "timing": {"epochs_run": 3, "fit_seconds": 252.3, "world_size": 1, "best_checkpoint": "best.ckpt"}}
    return config, metrics, counts, audit, train_info


def test_inclusion_counts_by_hand(run):
    counts = run[2]
    assert counts["train"] == {"images": 5, "patients": 4, "classes": {"normal": 2, "pneumonia": 3},
                               "sites": {"s1": 4, "s2": 1}}
    assert counts["val"] == {"images": 3, "patients": 2, "classes": {"normal": 1, "pneumonia": 2}, "sites": {"s2": 3}}
    assert list(counts) == ["train", "val", "test"]


def _numbers(obj, out=None) -> set[str]:
    """Every way the card may print a number held in ``obj``: fixed 0-4 decimals, as a percentage, or as written."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        for v in obj.values():
            _numbers(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _numbers(v, out)
    elif isinstance(obj, (int, float, np.integer, np.floating)) and not isinstance(obj, bool) and np.isfinite(obj):
        out |= {f"{float(obj):.{d}f}" for d in range(5)} | {f"{100 * float(obj):.{d}f}" for d in (0, 1)} | {str(obj)}
    return out


def test_every_decimal_in_the_card_is_formatted_from_the_dicts(run):
    config, metrics, counts, audit, train_info = run
    card = model_card(config, metrics, counts, audit, train_info)
    allowed = _numbers([config, metrics, counts, audit, train_info])
    printed = re.findall(r"-?\d+\.\d+", card)
    assert len(printed) > 150
    assert [x for x in printed if x not in allowed] == []


def test_card_rows_equal_the_metrics(run):
    config, metrics, counts, audit, train_info = run
    card = model_card(config, metrics, counts, audit, train_info)
    test = metrics["splits"]["test"]
    row = re.search(r"^\| test \| (\d+) \| (\d+) \| ([-\d.]+) \[([-\d.]+), ([-\d.]+)\] \| ([-\d.]+) ", card, re.M).groups()
    assert row == (str(test["n"]), str(test["positives"]), f"{test['auc']:.3f}", f"{test['auc_ci'][0]:.3f}",
                   f"{test['auc_ci'][1]:.3f}", f"{test['sensitivity']:.3f}")
    assert f"Operating threshold {THRESHOLD:.4f} (youden, chosen on val)" in card
    cal = test["calibration"]
    assert f"| test | {cal['brier']:.3f} | {cal['ece']:.3f} | {cal['slope']:.3f} [" in card
    conf = metrics["conformal"]
    assert f"coverage {conf['coverage']:.3f} (target 0.900)" in card
    assert f"half-width of {metrics['sample_size']['halfwidth']:.3f}" in card
    assert "| train | 5 | 4 | 2 | 3 | 2 |" in card  # images, patients, normal, pneumonia, sites
    assert "- Parameters: 11170753 trainable of 11170753" in card


def test_card_marks_unknowns_and_uses_the_authors_notes(run):
    config, metrics, counts, audit, train_info = run
    bare = model_card(config, metrics)
    assert bare.count(TBC) == 7 and "No audit recorded" in bare
    about = {"intended_use": "triage of paediatric chest radiographs", "data_dates": "2015-2017",
             "limitations": ["Single hospital."]}
    card = model_card(config, metrics, counts, audit, train_info, about)
    assert "- Intended use: triage of paediatric chest radiographs" in card and "- Dates of the data: 2015-2017" in card
    limits = card.split("## Limitations")[1].split("## Audit")[0]
    # the run's own limitations: no external split, test intercept CI above 0 excluded, small site, audit warning
    icpt = metrics["splits"]["test"]["calibration"]
    assert icpt["intercept_ci"][1] < 0
    assert f"intercept {icpt['intercept']:.3f} [{icpt['intercept_ci'][0]:.3f}, {icpt['intercept_ci'][1]:.3f}]" in limits
    assert "No external validation" in limits and "group 'small'" in limits and "- Single hospital." in limits


def test_tripod_ai_items_filled_from_the_run_or_marked(run):
    config, metrics, counts, audit, train_info = run
    text = tripod_ai_checklist(config, metrics, counts, audit, train_info, {"ethics": "waived (public data)"})
    rows = [line.split(" | ") for line in text.splitlines() if re.match(r"^\| \d+[a-g]? \|", line)]
    assert [r[0].strip("| ") for r in rows] == [item[0] for item in ITEMS] and len(rows) == 52
    answer = {r[0].strip("| "): r[4].rstrip(" |") for r in rows}
    assert answer["17"] == "waived (public data)" and answer["18a"] == TBC and answer["25"] == TBC
    test = metrics["splits"]["test"]
    assert f"test: AUC {test['auc']:.3f} [{test['auc_ci'][0]:.3f}, {test['auc_ci'][1]:.3f}]" in answer["23a"]
    assert f"threshold {THRESHOLD:.4f} by youden on val" in answer["15"]
    assert f"T = {metrics['recalibration']['temperature']:.3f}" in answer["12f"]
    assert "train 5 images, 4 patients (normal: 2, pneumonia: 3)" in answer["21"]
    filled = sum(a != TBC for a in answer.values())
    assert f"{filled} of 52 rows" in text and filled >= 24
    allowed = _numbers([config, metrics, counts, audit, train_info]) | {"385", "078378"}  # the BMJ citation
    assert [x for x in re.findall(r"-?\d+\.\d+", text) if x not in allowed] == []
