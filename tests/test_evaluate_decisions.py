"""What `medfit predict` calls each case: by hand on small tables."""
import pandas as pd

from medfit.evaluate.decisions import decision_columns
from medfit.task import Task


def test_binary_at_the_validation_threshold_and_a_missing_threshold_is_said():
    task = Task("binary", ("NORMAL", "PNEUMONIA"))
    out, note = decision_columns(pd.DataFrame({"prob": [0.2, 0.31, 0.9]}), task, {"method": "youden", "value": 0.31})
    assert out["predicted"].tolist() == ["NORMAL", "PNEUMONIA", "PNEUMONIA"] and note is None
    out, note = decision_columns(pd.DataFrame({"prob": [0.2]}), task, {})
    assert "predicted" not in out and "no threshold" in note


def test_multiclass_argmax_and_the_classes_above_their_thresholds():
    task = Task("multiclass", ("NORMAL", "bacterial", "viral"))
    probs = pd.DataFrame({"prob_NORMAL": [0.5, 0.1], "prob_bacterial": [0.3, 0.45], "prob_viral": [0.2, 0.45]})
    out, _ = decision_columns(probs, task, {"per_class": {"NORMAL": 0.6, "bacterial": 0.25, "viral": 0.4}})
    assert out["predicted"].tolist() == ["NORMAL", "bacterial"]  # a tie goes to the first class, as in the metrics
    assert out["above_threshold"].tolist() == ["bacterial", "bacterial;viral"]


def test_multilabel_labels_at_their_thresholds():
    task = Task("multilabel", ("mass", "large"), ("mass", "large"))
    out, note = decision_columns(pd.DataFrame({"prob_mass": [0.7, 0.1], "prob_large": [0.2, 0.05]}), task,
                                 {"per_label": {"mass": 0.5, "large": 0.2}})
    assert out["predicted"].tolist() == ["mass;large", ""] and note is None
