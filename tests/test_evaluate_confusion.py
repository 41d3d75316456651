"""Confusion matrix with row percentages and the most frequent confusions, on hand-made tables."""
import numpy as np
import pytest

from medfit.evaluate.confusion import confusion_pairs, confusion_table

NAMES = ["a", "b", "c"]
Y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 1, 0, 1, 0, 2, 0, 1])


def test_counts_and_row_percentages_by_hand():
    t = confusion_table(Y, PRED, NAMES + ["d"])  # class d never occurs: its row percentages are None
    assert t["counts"] == [[2, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert t["row_percent"][0] == pytest.approx([200 / 3, 100 / 3, 0, 0])
    assert t["row_percent"][1] == [50.0, 50.0, 0.0, 0.0]
    assert t["row_percent"][3] == [None] * 4
    assert t["row_totals"] == [3, 2, 3, 0]


def test_pairs_sorted_by_count_then_class_with_examples():
    # off-diagonal cells: a->b (row 1), b->a (row 4), c->a (row 6), c->b (row 7), all count 1: class order breaks ties
    pairs = confusion_pairs(Y, PRED, NAMES)
    assert [(p["true"], p["predicted"], p["count"], p["examples"]) for p in pairs] == [
        ("a", "b", 1, [1]), ("b", "a", 1, [4]), ("c", "a", 1, [6]), ("c", "b", 1, [7])]
    assert pairs[0]["share_of_true"] == pytest.approx(1 / 3)


def test_most_confident_examples_first_and_row_labels():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    pred = np.array([1, 1, 0, 1, 1, 0, 1])
    conf = np.array([0.6, 0.9, 0.8, 0.7, 0.7, 0.55, 0.9])
    pairs = confusion_pairs(y, pred, ["x", "y"], top=1, examples=5, confidence=conf, index=list("ABCDEFG"))
    assert pairs == [{"true": "x", "predicted": "y", "count": 2, "share_of_true": pytest.approx(2 / 3),
                      "examples": ["B", "A"]}]
