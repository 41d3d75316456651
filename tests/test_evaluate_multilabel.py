"""The "any" label at a validation threshold instead of 0.5, and label co-occurrence, by hand."""
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.evaluate.multilabel import any_label, any_label_metrics, label_cooccurrence


def test_any_label_rules():
    Y = np.array([[0, 1], [0, 0]])
    P = np.array([[0.2, 0.5], [0.1, 0.1]])
    y, p = any_label(Y, P)
    assert y.tolist() == [1, 0] and p.tolist() == [0.5, 0.1]
    assert any_label(Y, P, "noisy_or")[1] == pytest.approx([1 - 0.8 * 0.5, 1 - 0.9 * 0.9])
    with pytest.raises(DataError, match="any-label rule"):
        any_label(Y, P, "mean")


def test_threshold_chosen_on_validation_beats_the_fixed_half_on_underconfident_probabilities():
    # validation: positives 0.3, 0.25; negatives 0.2, 0.1, 0.05 -> Youden cut 0.25 (TPR 1, FPR 0)
    y_val, p_val = np.array([1, 1, 0, 0, 0]), np.array([0.3, 0.25, 0.2, 0.1, 0.05])
    # test: at 0.25 rows 0 and 2 called, both positive -> TP 2, TN 2; at 0.5 only row 2 -> sensitivity 1/2
    y, p = np.array([1, 0, 1, 0]), np.array([0.28, 0.22, 0.6, 0.1])
    r = any_label_metrics(y_val, p_val, y, p)
    assert r["threshold"] == {"method": "youden", "value": 0.25, "chosen_on": "val"}
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (2, 0, 2, 0) and r["sensitivity"] == 1.0
    assert any_label_metrics(y_val, p_val, y, p, "fixed", 0.5)["sensitivity"] == 0.5
    with pytest.raises(DataError, match="'any' label"):
        any_label_metrics(np.ones(3), np.ones(3), y, p)


def test_cooccurrence_by_hand():
    Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]])
    c = label_cooccurrence(Y, ["a", "b", "c"])
    # a: rows 0, 1, 4; b: rows 0, 2, 4; c: rows 2, 4; a&b: rows 0, 4; a&c: row 4; b&c: rows 2, 4
    assert c["counts"] == [[3, 2, 1], [2, 3, 2], [1, 2, 2]]
    assert c["conditional_percent"][2] == pytest.approx([50, 100, 100])  # of the 2 c cases, 1 has a, 2 have b
    assert c["labels_per_case"] == {"0": 1, "1": 1, "2": 2, "3": 1}
