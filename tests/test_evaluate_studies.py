"""Study-level metrics of augmented prediction at the validation studies' threshold, checked by hand."""
import pandas as pd
import pytest

from medfit.config import EvaluateConfig
from medfit.evaluate.augmented import study_predictions
from medfit.evaluate.studies import internal_sites, study_level_metrics


def slice_rows() -> pd.DataFrame:
    """Three slices per study; the combined (mean) probabilities are the numbers below."""
    studies = [("v1", "val", "A", 0, 0.1), ("v2", "val", "A", 0, 0.2), ("v3", "val", "B", 1, 0.7),
               ("v4", "val", "B", 1, 0.9), ("t1", "test", "A", 0, 0.3), ("t2", "test", "B", 0, 0.75),
               ("t3", "test", "A", 1, 0.72), ("t4", "test", "B", 1, 0.5), ("t5", "test", "B", 1, 0.9)]
    rows = []
    for sid, split, site, y, p in studies:
        for offset, d in ((-1, -0.05), (0, 0.0), (1, 0.05)):
            rows.append({"study_id": sid, "split": split, "site": site, "offset": offset, "label": y, "prob": p + d})
    return pd.DataFrame(rows)


def test_study_metrics_at_the_validation_threshold():
    studies = study_predictions(slice_rows(), "label")
    assert list(studies["site"]) == ["A", "A", "B", "B", "A", "B", "A", "B", "B"]
    assert studies["combined"].round(6).tolist()[4:] == [0.3, 0.75, 0.72, 0.5, 0.9]
    res = study_level_metrics(studies, "label", EvaluateConfig(bootstrap=0), internal=["A"])
    assert res["threshold"] == {"method": "youden", "value": pytest.approx(0.7), "chosen_on": "val studies"}
    test = res["splits"]["test"]
    # at 0.7: TP 0.72, 0.9; FN 0.5; FP 0.75; TN 0.3
    assert test["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 2} and test["n"] == 5
    assert test["accuracy"] == pytest.approx(0.6) and test["sensitivity"] == pytest.approx(2 / 3)
    assert test["specificity"] == pytest.approx(0.5) and test["f1"] == pytest.approx(4 / 6)
    assert test["auc"] == pytest.approx(4 / 6)
    rows = {(r["split"], r["site"]): r for r in res["sites"]}
    assert rows[("test", "A")]["role"] == "internal" and rows[("test", "B")]["role"] == "external"
    assert rows[("test", "A")]["accuracy"] == 1.0 and rows[("test", "B")]["accuracy"] == pytest.approx(1 / 3)
    one_class = studies[~studies["study_id"].isin(["v3", "v4"])]
    assert "no validation studies of both classes" in study_level_metrics(one_class, "label", EvaluateConfig())["note"]
    assert internal_sites(pd.DataFrame({"split": ["train", "test", "train"], "site": ["B", "C", "A"]})) == ["A", "B"]
