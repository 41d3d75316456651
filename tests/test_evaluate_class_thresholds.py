"""Per-class thresholds chosen on validation by hand, carried to a test table computed by hand, the ratio rule."""
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.evaluate.class_thresholds import (carried_class_thresholds, class_threshold_metrics, class_thresholds,
                                              threshold_rule)

NAMES = ["a", "b", "c"]
Y_VAL = np.array([0, 0, 1, 1, 2, 2])
P_VAL = np.array([  # columns need not sum to 1 for one-vs-rest thresholds
    [0.8, 0.1, 0.1], [0.35, 0.3, 0.35], [0.4, 0.5, 0.05], [0.2, 0.45, 0.35], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])
Y_TEST = np.array([0, 0, 0, 1, 1, 2, 2, 2])
P_TEST = np.array([[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.5, 0.1, 0.4], [0.2, 0.7, 0.1],
                   [0.4, 0.4, 0.2], [0.1, 0.2, 0.7], [0.3, 0.2, 0.5], [0.36, 0.5, 0.14]])


def test_youden_per_class_by_hand():
    # a vs rest: positives {0.8, 0.35}, negatives {0.4, 0.2, 0.1, 0.3}. J = TPR - FPR at each cut:
    #   0.8: 1/2 - 0 = .5;  0.4: 1/2 - 1/4 = .25;  0.35: 1 - 1/4 = .75 (best);  0.3: 1 - 2/4 = .5
    # b vs rest: positives {0.5, 0.45}, negatives {0.1, 0.3, 0.2, 0.6}: 0.6: -.25; 0.5: .25; 0.45: .75 (best)
    # c vs rest: positives {0.7, 0.1}, negatives {0.1, 0.35, 0.05, 0.35}: 0.7: .5 (best); 0.35: 0; 0.1: 1 - 3/4
    assert class_thresholds(Y_VAL, P_VAL, NAMES) == {"a": 0.35, "b": 0.45, "c": 0.7}
    # target sensitivity 1 for c: the highest cut keeping both positives is 0.1
    assert class_thresholds(Y_VAL, P_VAL, NAMES, "sensitivity", 1.0)["c"] == pytest.approx(0.1)
    assert class_thresholds(Y_VAL, P_VAL, NAMES, "fixed", 0.4) == {"a": 0.4, "b": 0.4, "c": 0.4}


def test_metrics_at_the_carried_thresholds_by_hand():
    m = class_threshold_metrics(Y_TEST, P_TEST, {"a": 0.35, "b": 0.45, "c": 0.7})
    # a: called (p_a >= 0.35) rows 0, 2, 4, 7; true a rows 0, 1, 2 -> TP 2, FN 1, FP 2, TN 3
    a = m["a"]
    assert (a["tp"], a["fn"], a["fp"], a["tn"]) == (2, 1, 2, 3)
    assert (a["sensitivity"], a["specificity"], a["ppv"], a["npv"]) == pytest.approx((2 / 3, 3 / 5, 1 / 2, 3 / 4))
    assert a["f1"] == pytest.approx(4 / 7) and a["accuracy"] == pytest.approx(5 / 8)
    # Wilson 95 % for 2/3: z^2 = 3.841459, denom = 1 + z^2/3 = 2.280486,
    # centre = (2/3 + z^2/6) / denom = 0.573084, half = z sqrt(2/9/3 + z^2/36) / denom = 0.365423
    assert a["wilson_ci"]["sensitivity"] == [pytest.approx(0.207661, abs=1e-5), pytest.approx(0.938507, abs=1e-5)]
    # b: called rows 1, 3, 7; true b rows 3, 4 -> TP 1, FN 1, FP 2, TN 4
    assert (m["b"]["tp"], m["b"]["fn"], m["b"]["fp"], m["b"]["tn"]) == (1, 1, 2, 4)
    assert m["b"]["ppv"] == pytest.approx(1 / 3)
    # c: called row 5 only (0.7 >= 0.7); true c rows 5, 6, 7 -> TP 1, FN 2, FP 0, TN 5
    assert (m["c"]["sensitivity"], m["c"]["specificity"], m["c"]["npv"]) == pytest.approx((1 / 3, 1.0, 5 / 7))


def test_ratio_rule_by_hand_and_its_accuracy():
    # p_k / t_k with t = (0.35, 0.45, 0.7):
    #   row 1: (0.86, 1.11, 0.29) -> b;  row 4: (1.14, 0.89, 0.29) -> a;
    #   row 6: (0.86, 0.44, 0.71) -> a (plain argmax would say c);  row 7: (1.03, 1.11, 0.20) -> b
    pred = threshold_rule(P_TEST, {"a": 0.35, "b": 0.45, "c": 0.7})
    assert pred.tolist() == [0, 1, 0, 1, 0, 2, 0, 1]
    assert threshold_rule(P_TEST, [0.5, 0.5, 0.5]).tolist() == P_TEST.argmax(1).tolist()
    r = carried_class_thresholds(Y_VAL, P_VAL, Y_TEST, P_TEST, NAMES)
    assert r["threshold"]["per_class"] == {"a": 0.35, "b": 0.45, "c": 0.7}
    assert r["decision_rule"]["accuracy"] == 0.5  # rows 0, 2, 3, 5 right
    assert r["per_class"]["a"]["tp"] == 2


def test_multilabel_thresholds_per_label_and_one_class_validation():
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    P = np.array([[0.7, 0.2], [0.3, 0.9], [0.6, 0.4], [0.2, 0.3]])
    assert class_thresholds(Y, P, ["x", "y"]) == {"x": 0.6, "y": 0.4}
    r = carried_class_thresholds(Y, P, Y, P, ["x", "y"])
    assert "decision_rule" not in r and r["per_class"]["y"]["sensitivity"] == 1.0
    with pytest.raises(DataError, match="class 'x'.*one class only"):
        class_thresholds(np.array([[1, 0], [1, 1]]), np.array([[0.7, 0.2], [0.3, 0.9]]), ["x", "y"])
