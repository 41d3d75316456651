"""The per-class evidence of a multiclass run's metrics on the hand-computed tables of the pure-function tests: the
thresholds chosen on val and carried to test, Wilson CIs, the per-class AUC bootstrap CI, top-k, kappa, the confusion
pairs; `medfit evaluate --threshold sensitivity --threshold-value 0.95` applies per class."""
import json

import numpy as np
import pandas as pd
import pytest
from test_evaluate_class_thresholds import P_TEST, P_VAL, Y_TEST, Y_VAL
from test_evaluate_ovr_auc import P4, Y4

from medfit.cli import main
from medfit.config import config_from_dict
from medfit.evaluate.run import evaluate_predictions
from medfit.run_folder import RunFolder

NAMES = ["a", "b", "c"]


def table(parts) -> pd.DataFrame:
    rows = []
    for split, Y, P in parts:
        for i, (y, p) in enumerate(zip(Y, P)):
            rows.append({"image": f"{split}{i}.png", "split": split, "label": int(y),
                         **{f"prob_{n}": float(v) for n, v in zip(NAMES, p)}})
    return pd.DataFrame(rows)


def config(**evaluate):
    return config_from_dict({"data": {"task": "multiclass", "class_names": NAMES},
                             "evaluate": {"bootstrap": 50, **evaluate}})


def test_thresholds_from_val_carried_to_test_with_wilson_cis_by_hand():
    m = evaluate_predictions(table([("val", Y_VAL, P_VAL), ("test", Y_TEST, P_TEST)]), config())
    assert m["threshold"]["per_class"] == {"a": 0.35, "b": 0.45, "c": 0.7}  # Youden by hand in the leaf's test
    assert m["threshold"]["chosen_on"] == "val" and m["threshold"]["decision"] == "argmax"
    test = m["splits"]["test"]["classes"]
    a = test["thresholds"]["a"]
    assert (a["tp"], a["fn"], a["fp"], a["tn"]) == (2, 1, 2, 3)
    assert a["wilson_ci"]["sensitivity"] == [pytest.approx(0.207661, abs=1e-5), pytest.approx(0.938507, abs=1e-5)]
    assert test["decision_rule"]["accuracy"] == 0.5  # argmax p/t right on rows 0, 2, 3, 5
    # a vs rest on test: positives {0.6, 0.3, 0.5} against {0.2, 0.4, 0.1, 0.3, 0.36}: 5 + 2.5 + 5 = 12.5 of 15
    assert test["auc"]["per_class"]["a"]["auc"] == pytest.approx(12.5 / 15)
    # strictly more probable classes than the truth: row 7 has two, the rest none -> top-2 7/8; argmax acc 5/8
    assert test["top_k"]["top_2"]["accuracy"] == pytest.approx(7 / 8) and m["splits"]["test"]["top_2"] == 0.875
    assert m["splits"]["test"]["accuracy"] == pytest.approx(5 / 8)
    # argmax confusion rows a: [2, 1, 0], b: [1, 1, 0], c: [0, 1, 2]; po = 5/8, pe = (9 + 6 + 6)/64 -> 19/43
    assert test["confusion"]["counts"] == [[2, 1, 0], [1, 1, 0], [0, 1, 2]]
    assert test["confusion"]["row_percent"][2] == pytest.approx([0, 100 / 3, 200 / 3])
    assert test["kappa"]["kappa"] == pytest.approx(19 / 43) and test["kappa"]["weights"] == "none"
    assert [(p["true"], p["predicted"], p["examples"]) for p in test["confusion_pairs"]] == [
        ("a", "b", ["test1.png"]), ("b", "a", ["test4.png"]), ("c", "b", ["test7.png"])]
    assert test["calibration"]["n_bins"] == 10 and set(test["calibration"]["per_class"]) == set(NAMES)


def test_ordinal_classes_get_quadratic_kappa():
    # quadratic disagreement: observed 3/8 (three neighbours off by one); expected 88/64 -> 1 - 0.375/1.375 = 8/11
    m = evaluate_predictions(table([("val", Y_VAL, P_VAL), ("test", Y_TEST, P_TEST)]), config(ordinal=True))
    assert m["splits"]["test"]["kappa"] == pytest.approx(8 / 11)
    assert m["threshold"]["weights_kappa"] == "quadratic"


def test_per_class_auc_bootstrap_ci_in_the_metrics_matches_the_enumerated_distribution():
    # the leaf's hand case (class a: AUC 1, 3/4, 1/2 with probabilities 1/4, 1/2, 1/4): 80 % interval [0.5, 1]
    cfg = config_from_dict({"seed": 3, "data": {"task": "multiclass", "class_names": NAMES},
                            "evaluate": {"bootstrap": 400, "ci_level": 0.8, "threshold": "fixed"}})
    m = evaluate_predictions(table([("val", Y4, P4), ("test", Y4, P4)]), cfg)
    a = m["splits"]["test"]["classes"]["auc"]["per_class"]["a"]
    assert a["auc"] == pytest.approx(0.75) and a["auc_ci"] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert m["threshold"]["per_class"] == {"a": 0.5, "b": 0.5, "c": 0.5}


def test_a_class_missing_from_val_is_reported_not_defaulted():
    keep = Y_VAL != 2
    m = evaluate_predictions(table([("val", Y_VAL[keep], P_VAL[keep]), ("test", Y_TEST, P_TEST)]), config())
    assert "class 'c'" in m["threshold"]["error"] and "per_class" not in m["threshold"]
    assert "thresholds" not in m["splits"]["test"]["classes"] and "auc" in m["splits"]["test"]["classes"]


def test_evaluate_verb_applies_a_target_sensitivity_per_class(tmp_path, capsys):
    run = RunFolder(tmp_path / "run")
    run.write_config(config_from_dict({"name": "run", "data": {"task": "multiclass", "class_names": NAMES},
                                       "evaluate": {"bootstrap": 20}}))
    run.write_csv("predictions", table([("val", Y_VAL, P_VAL), ("test", Y_TEST, P_TEST)]))
    assert main(["evaluate", str(run.path), "--threshold", "sensitivity", "--threshold-value", "0.95"]) == 0
    metrics = json.loads(run.file("metrics").read_text())
    # 0.95 of two positives needs both: the highest cut keeping them is the lower positive score of each class
    assert metrics["threshold"]["per_class"] == {"a": 0.35, "b": 0.45, "c": 0.1}
    assert metrics["threshold"]["method"] == "sensitivity" and metrics["threshold"]["value"] == 0.95
    assert all(v["sensitivity"] == 1.0 for v in metrics["splits"]["val"]["classes"]["thresholds"].values())
    c = metrics["splits"]["test"]["classes"]["thresholds"]["c"]
    assert (c["sensitivity"], c["specificity"]) == (1.0, 0.0)  # every test p_c >= 0.1
    assert run.read_config().evaluate.threshold == "sensitivity"
    out = capsys.readouterr().out
    assert "per class on test" in out and "per-class thresholds (sensitivity 0.95)" in out
    html = run.file("report").read_text()
    assert "thresholds per class: sensitivity 0.95 on class k vs the rest, chosen on validation" in html
    assert np.isfinite(metrics["splits"]["test"]["kappa"])
