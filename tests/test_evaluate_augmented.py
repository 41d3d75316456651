"""Study-level combination of slice probabilities for multiclass and multilabel runs, by hand."""
import numpy as np
import pandas as pd
import pytest

from medfit.errors import DataError
from medfit.evaluate.augmented import combine_class_probabilities, combine_probabilities, study_class_predictions

SLICES = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])


def test_multiclass_rules_by_hand():
    assert combine_class_probabilities(SLICES, "mean_prob") == pytest.approx([0.6, 0.25, 0.15])
    # max per class (0.7, 0.3, 0.2), renormalised by 1.2
    assert combine_class_probabilities(SLICES, "max") == pytest.approx([0.7 / 1.2, 0.25, 0.2 / 1.2])
    # mean log-probability -> geometric means sqrt(0.35), sqrt(0.06), sqrt(0.02) = 0.5916, 0.2449, 0.1414 (sum 0.9780)
    g = np.sqrt([0.35, 0.06, 0.02])
    assert combine_class_probabilities(SLICES, "mean_logit") == pytest.approx(g / g.sum())
    for rule in ("mean_prob", "max", "mean_logit"):
        assert combine_class_probabilities(SLICES, rule).sum() == pytest.approx(1.0)


def test_multilabel_combines_each_label_like_the_binary_rule():
    for rule in ("mean_prob", "max", "mean_logit"):
        got = combine_class_probabilities(SLICES, rule, "multilabel")
        assert got == pytest.approx([combine_probabilities(SLICES[:, k], rule) for k in range(3)])
    with pytest.raises(DataError, match="volume.combine"):
        combine_class_probabilities(SLICES, "median")


def test_study_table_keeps_key_slice_labels_and_probabilities():
    pred = pd.DataFrame({"study_id": ["s1", "s1", "s2"], "offset": [-1, 0, 0], "split": "test", "label": [2, 2, 0],
                         "prob_a": [0.7, 0.5, 0.9], "prob_b": [0.2, 0.3, 0.05], "prob_c": [0.1, 0.2, 0.05]})
    s = study_class_predictions(pred, ["label"], ["prob_a", "prob_b", "prob_c"], "multiclass")
    assert s["label"].tolist() == [2, 0] and s["slices"].tolist() == [2, 1]
    assert s.loc[0, ["prob_a", "prob_b", "prob_c"]].tolist() == pytest.approx([0.6, 0.25, 0.15])
    assert s.loc[0, "single_prob_a"] == 0.5
    with pytest.raises(DataError, match="no key-slice row"):
        study_class_predictions(pred[pred["offset"] != 0], ["label"], ["prob_a"], "multiclass")
