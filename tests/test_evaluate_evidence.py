"""The evidence sections of a run's metrics, on small tables computed by hand."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import config_from_dict
from medfit.errors import ConfigError
from medfit.evaluate.conformal_run import coverage_note, prediction_sets, run_conformal
from medfit.evaluate.evidence import add_evidence, headline_split, sample_size, uncertainty_of
from medfit.evaluate.run import evaluate_predictions
from medfit.evaluate.seeds import seed_metrics
from medfit.evaluate.subgroup_columns import subgroup_columns
from medfit.evaluate.tta import tta_comparison
from medfit.report.conformal import conformal_section
from medfit.report.model_card import model_card
from medfit.task import Task

BINARY = Task("binary", ("normal", "pneumonia"))
VAL_Y = [1, 1, 1, 1, 1, 0, 0, 0, 0]
VAL_P = [0.95, 0.9, 0.8, 0.7, 0.4, 0.1, 0.2, 0.3, 0.6]


def cfg(**evaluate):
    return config_from_dict({"data": {"class_names": ["normal", "pneumonia"]},
                             "evaluate": {"bootstrap": 0, **evaluate}})


def table(val_p=VAL_P, val_y=VAL_Y, test_p=(0.5, 0.95, 0.35, 0.3), test_y=(1, 1, 0, 1)):
    return pd.DataFrame({"image": [f"v{i}" for i in range(len(val_p))] + [f"t{i}" for i in range(len(test_p))],
                         "split": ["val"] * len(val_p) + ["test"] * len(test_p), "site": "site0",
                         "label": list(val_y) + list(test_y), "prob": list(val_p) + list(test_p)})


def test_binary_conformal_sets_by_hand():
    # LAC scores 1 - p(true label) on val: [.05 .1 .2 .3 .6 | .1 .2 .3 .6]; alpha 0.2 -> the 8th smallest = 0.6.
    # A label joins the set when its score <= 0.6: p 0.5 -> {0, 1}; 0.95 -> {1}; 0.35 -> {0}; 0.3 -> {0}.
    pred, e = table(), cfg(conformal_alpha=0.2).evaluate
    res = run_conformal(pred, BINARY, e, "test")
    assert res["coverage"] == 0.75 and res["mean_set_size"] == 1.25 and res["uncertain_share"] == 0.25
    assert res["calibration_n"] == 9 and res["split"] == "test" and res["other_splits"] == {}
    sets = prediction_sets(pred[pred["split"] == "val"], pred[pred["split"] == "test"], BINARY, e)
    assert sets == ["{normal, pneumonia}", "{pneumonia}", "{normal}", "{normal}"]
    assert "short by 5.0 points" in res["note"] and "test differs from validation" in res["note"]


def test_coverage_note_within_above_and_short():
    base = {"split": "test", "n": 624, "alpha": 0.1, "target_coverage": 0.9, "calibration_n": 520}
    assert "within 3 points" in coverage_note({**base, "coverage": 0.88})
    assert "5.0 points above" in coverage_note({**base, "coverage": 0.95})
    short = coverage_note({**base, "coverage": 0.84})
    assert "test coverage 0.840 (624 cases) against the requested 0.900" in short and "short by 6.0 points" in short


def test_conformal_off_or_without_validation():
    assert run_conformal(table(), BINARY, cfg(conformal_alpha=0).evaluate, "test") is None
    no_val = table().assign(split="test")
    assert run_conformal(no_val, BINARY, cfg().evaluate, "test") is None


def test_decision_curve_and_calibration_slope_in_the_metrics():
    pred = table()
    c = cfg(decision_thresholds=[0.25, 0.5, 0.25], conformal_alpha=0.2)
    metrics = add_evidence(evaluate_predictions(pred, c), pred, c)
    curve = metrics["splits"]["test"]["decision_curve"]
    # test: p (0.5, 0.95, 0.35, 0.3), y (1, 1, 0, 1). At pt 0.25 all four are treated: TP 3, FP 1 -> 3/4 - 1/4 * 1/3
    assert curve["thresholds"] == [0.25, 0.5]
    assert curve["net_benefit"]["model"][0] == pytest.approx(0.75 - 0.25 / 3)
    assert curve["net_benefit"]["model"][1] == pytest.approx(0.5)  # pt 0.5: TP 2, FP 0
    assert curve["net_benefit"]["treat_all"][1] == pytest.approx(0.75 - 0.25)
    cal = metrics["splits"]["val"]["calibration"]
    assert {"slope", "slope_ci", "intercept", "intercept_ci"} <= set(cal) and cal["slope"] > 0
    assert metrics["recalibration"]["split"] == "test" and metrics["recalibration"]["fitted_on"] == "val"
    assert metrics["conformal"]["coverage"] == 0.75 and metrics["referral"]["uncertainty"] == "predictive entropy"
    assert "seeds" not in metrics and "tta" not in metrics


def test_headline_split():
    assert headline_split({"val": 1, "test": 1, "external": 1}) == "test"
    assert headline_split({"val": 1, "external": 1}) == "external" and headline_split({"val": 1}) is None


def test_sample_size_hanley_mcneil_by_hand():
    # A 0.8, 40 positives, 60 negatives: Q1 = 2/3, Q2 = 1.28/1.8; var = (0.16 + 39 (Q1 - .64) + 59 (Q2 - .64)) / 2400
    q1, q2 = 0.8 / 1.2, 1.28 / 1.8
    se = np.sqrt((0.16 + 39 * (q1 - 0.64) + 59 * (q2 - 0.64)) / 2400)
    s = sample_size({"n": 100, "positives": 40, "auc": 0.8, "auc_ci": [0.7, 0.9]}, 0.05, 0.95, "test")
    assert s["halfwidth"] == pytest.approx(1.959964 * se, abs=1e-5) and s["bootstrap_halfwidth"] == pytest.approx(0.1)
    assert s["for_target"]["n"] > 100 and s["split"] == "test"
    assert sample_size({"n": 10, "positives": 0, "auc": None}, 0.05, 0.95, "test") is None


def test_subgroup_columns_from_the_manifest_and_image_patterns():
    pred = pd.DataFrame({"image": ["a/person1_virus_1.jpeg", "a/person2_bacteria_2.jpeg", "a/IM-3.jpeg"],
                         "split": "test"})
    manifest = pd.DataFrame({"image": ["a/IM-3.jpeg", "a/person1_virus_1.jpeg", "a/person2_bacteria_2.jpeg",
                                       "a/person1_virus_1.jpeg"], "split": ["test", "test", "test", "train"],
                             "sex": ["F", "M", None, "M"]})
    groups = subgroup_columns(pred, manifest, ["sex"], {"pathogen": r"_(bacteria|virus)_"})
    assert groups["sex"].tolist() == ["M", "(missing)", "F"]
    assert groups["pathogen"].tolist() == ["virus", "bacteria", "(no match)"]
    with pytest.raises(ConfigError, match=r"evaluate.subgroups: column\(s\) \['age'\] not in the run's manifest"):
        subgroup_columns(pred, manifest, ["age"], {})


def test_seed_metrics_mean_and_sd_of_the_members():
    pred = table().assign(member0_prob=lambda d: d["prob"], member1_prob=[0.9] * 9 + [0.5, 0.3, 0.4, 0.2])
    s = seed_metrics(pred, BINARY, cfg().evaluate)
    # member 0 on test: positives 0.5, 0.95, 0.3 vs negative 0.35 -> AUC 2/3; member 1: 0.5, 0.3, 0.2 vs 0.4 -> 1/3
    auc = s["splits"]["test"]["auc"]
    assert s["seeds"] == [0, 1] and auc["n"] == 2 and auc["mean"] == pytest.approx(0.5)
    assert auc["sd"] == pytest.approx(np.std([2 / 3, 1 / 3], ddof=1))
    assert seed_metrics(table(), BINARY, cfg().evaluate) is None


def test_tta_comparison_paired_delong_and_study_level():
    pred = table().assign(no_tta_prob=lambda d: d["prob"])
    res = tta_comparison(pred, BINARY, ["hflip"])
    assert res["splits"]["test"]["difference"] == 0 and res["splits"]["test"]["p_value"] == 1.0
    studies = pred.assign(study_id=[f"s{i // 2}" for i in range(len(pred))], no_tta_prob=pred["prob"] * 0.5)
    res = tta_comparison(studies, BINARY, ["hflip"])
    assert set(res["studies"]) == {"val", "test"} and res["studies"]["val"]["n"] == 5
    assert tta_comparison(table(), BINARY, []) is None


def test_uncertainty_is_the_spread_when_the_run_has_one():
    part = table().assign(spread=0.1)
    u, kind = uncertainty_of(part, BINARY, cfg(mc_dropout=5))
    assert (u == 0.1).all() and kind == "sd of the prediction over 5 MC-dropout passes"
    u, kind = uncertainty_of(table(), BINARY, cfg())
    assert kind == "predictive entropy" and u[0] == pytest.approx(-(0.95 * np.log(0.95) + 0.05 * np.log(0.05)) / np.log(2))


def test_evidence_keys_are_checked_at_load_time():
    for bad, match in (({"conformal_alpha": 1.5}, "conformal_alpha"), ({"tta": ["rotate"]}, "unknown view"),
                       ({"decision_thresholds": [0.5, 0.1, 0.01]}, "decision_thresholds"),
                       ({"mc_dropout": 1}, "mc_dropout"), ({"subgroup_patterns": {"x": "("}}, "subgroup_patterns.x")):
        with pytest.raises(ConfigError, match=match):
            cfg(**bad)
    with pytest.raises(ConfigError, match="train.seeds"):
        config_from_dict({"train": {"seeds": [1, 1]}})


def test_mondrian_by_site_with_unseen_sites_is_reported_not_raised():
    pred = table()
    pred.loc[pred["split"] == "test", "site"] = "elsewhere"
    res = run_conformal(pred, BINARY, cfg(conformal_mondrian="site").evaluate, "test")
    assert "coverage" not in res and "elsewhere have no calibration (validation) cases" in res["skipped"]
    metrics = {"splits": {"test": {"n": 4}}, "conformal": res}
    assert "Not computed: conformal groups elsewhere" in conformal_section(metrics)
    assert "- Conformal prediction sets not computed: conformal groups elsewhere" in model_card({}, metrics)


def test_multiclass_runs_get_conformal_sets_referral_and_seeds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    logits = np.eye(3)[y] * 2 + rng.normal(0, 1, (120, 3))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = pd.DataFrame({"image": [f"i{k}" for k in range(120)], "split": ["val"] * 60 + ["test"] * 60,
                         "site": "s", "label": y, **{f"prob_{c}": prob[:, k] for k, c in enumerate("abc")},
                         **{f"member{s}_prob_{c}": prob[:, k] for s in (3, 4) for k, c in enumerate("abc")}})
    c = config_from_dict({"data": {"task": "multiclass", "class_names": ["a", "b", "c"]},
                          "evaluate": {"bootstrap": 0, "conformal_method": "aps"}})
    metrics = add_evidence(evaluate_predictions(pred, c), pred, c)
    assert metrics["conformal"]["method"] == "aps" and set(metrics["conformal"]["per_class"]) == {"a", "b", "c"}
    assert metrics["referral"]["uncertainty"] == "predictive entropy" and len(metrics["referral"]["at"]) == 3
    assert metrics["seeds"]["seeds"] == [3, 4] and metrics["seeds"]["splits"]["test"]["auc"]["sd"] == 0
    assert metrics["seeds"]["splits"]["test"]["auc"]["mean"] == pytest.approx(metrics["splits"]["test"]["auc"])
    assert "sample_size" not in metrics and "decision_curve" not in metrics["splits"]["test"]
