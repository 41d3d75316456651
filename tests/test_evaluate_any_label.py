"""The multilabel "any" label thresholded on validation (not a fixed 0.5), by hand; per-label metrics at the
per-label validation thresholds; label co-occurrence and per-label CIs in the metrics."""
import pandas as pd
import pytest

from medfit.config import EvaluateConfig, config_from_dict
from medfit.evaluate.any_label import any_label_results
from medfit.evaluate.run import evaluate_predictions

# val: p_any (max) = 0.7, 0.6, 0.3, 0.2 with any = 1, 1, 0, 0 -> Youden threshold 0.6 (J = 1)
VAL = [((1, 0), (0.7, 0.1)), ((0, 1), (0.2, 0.6)), ((0, 0), (0.3, 0.1)), ((0, 0), (0.2, 0.15))]
# test: p_any = 0.8, 0.55, 0.3, 0.58 with any = 1, 0, 0, 1
TEST = [((1, 0), (0.8, 0.1)), ((0, 0), (0.55, 0.2)), ((0, 0), (0.1, 0.3)), ((0, 1), (0.2, 0.58))]


def table() -> pd.DataFrame:
    rows = []
    for split, part in (("val", VAL), ("test", TEST)):
        for i, ((x, y), (px, py)) in enumerate(part):
            rows.append({"image": f"{split}{i}", "patient_id": f"{split}{i // 2}", "split": split, "x": x, "y": y,
                         "prob_x": px, "prob_y": py})
    return pd.DataFrame(rows)


def test_any_label_threshold_is_chosen_on_validation():
    r = any_label_results(table(), ["x", "y"], EvaluateConfig(), "patient_id")
    test = r["splits"]["test"]["any"]
    assert test["threshold"]["value"] == pytest.approx(0.6) and test["threshold"]["chosen_on"] == "val"
    # at 0.6: row 0 caught, row 3 (0.58) missed, rows 1 and 2 negative -> sensitivity 1/2, specificity 1
    # (at the old fixed 0.5: sensitivity 1, specificity 1/2)
    assert (test["tp"], test["fn"], test["fp"], test["tn"]) == (1, 1, 0, 2)
    assert (test["sensitivity"], test["specificity"]) == (0.5, 1.0)
    # per patient (two rows each): test patients have max p 0.8 (any 1) and 0.58 (any 1); val 0.7 (1) and 0.3 (0)
    per_patient = r["splits"]["test"]["any_patient_id"]
    assert per_patient["n"] == 2 and per_patient["positives"] == 2
    # per label at its own validation threshold: x (val positives 0.7 vs 0.2, 0.3, 0.2) -> 0.7; y -> 0.6
    assert r["threshold"]["per_label"] == {"x": 0.7, "y": 0.6}
    assert r["splits"]["test"]["per_label"]["y"]["sensitivity"] == 0.0  # 0.58 < 0.6


def test_multilabel_metrics_hold_cooccurrence_and_per_label_ci():
    cfg = config_from_dict({"data": {"task": "multilabel", "label_columns": ["x", "y"]}, "evaluate": {"bootstrap": 20}})
    m = evaluate_predictions(table(), cfg)
    test = m["splits"]["test"]["classes"]
    assert test["cooccurrence"]["counts"] == [[1, 0], [0, 1]] and test["cooccurrence"]["labels_per_case"] == {
        "0": 2, "1": 2, "2": 0}
    assert test["thresholds"]["x"]["threshold"] == 0.7 and "wilson_ci" in test["thresholds"]["x"]
    assert test["auc"]["per_class"]["x"]["auc"] == 1.0  # 0.8 above 0.55, 0.1, 0.2
    assert m["class_thresholds"]["per_class"] == {"x": 0.7, "y": 0.6}
