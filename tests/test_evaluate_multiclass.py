"""Top-k accuracy against scikit-learn, the label helpers shared by the multiclass modules."""
import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from medfit.errors import DataError
from medfit.evaluate.multiclass import indicator_matrix, label_strata, top_k_accuracy


def test_top_k_matches_sklearn_with_wilson_ci():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    prob = rng.dirichlet(np.ones(4), 200) + np.eye(4)[y] * 0.2
    r = top_k_accuracy(y, prob, ks=(1, 2, 3, 4))
    assert set(r) == {"top_1", "top_2", "top_3"}  # top-4 of 4 classes is always 1
    for k in (1, 2, 3):
        assert r[f"top_{k}"]["accuracy"] == pytest.approx(top_k_accuracy_score(y, prob, k=k, labels=range(4)))
        lo, hi = r[f"top_{k}"]["ci"]
        assert lo < r[f"top_{k}"]["accuracy"] < hi


def test_top_k_by_hand():
    y = np.array([0, 1, 2])
    prob = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])  # truth ranked 1st, 2nd, 3rd
    r = top_k_accuracy(y, prob, ks=(1, 2))
    assert (r["top_1"]["hits"], r["top_2"]["hits"]) == (1, 2)


def test_indicator_and_strata():
    assert indicator_matrix(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(DataError, match="0..2"):
        indicator_matrix(np.array([3]), 3)
    with pytest.raises(DataError, match="0/1"):
        indicator_matrix(np.array([[0, 2, 0]]), 3)
    Y = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 1]])
    s = label_strata(Y)
    assert s[0] == s[1] and s[2] == s[4] and s[3] == -1 and s[0] != s[2]


def test_top_k_of_an_empty_split_is_json_safe():
    assert top_k_accuracy(np.array([], int), np.zeros((0, 3)), ks=(1,))["top_1"] == {
        "accuracy": None, "ci": [None, None], "hits": 0, "n": 0}
