"""Augmented prediction for multiclass runs on a hand-made slice table: key slice alone vs the study mean."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import config_from_dict
from medfit.evaluate.augmented_classes import class_augmented_results, class_augmented_table

NAMES = ["a", "b", "c"]
# key slices of two studies per class: a vs rest AUC 5/8, b vs rest 5/8, c vs rest 1 -> macro 0.75
KEYS = {0: [[0.4, 0.3, 0.3], [0.3, 0.4, 0.3]], 1: [[0.3, 0.4, 0.3], [0.4, 0.3, 0.3]], 2: [[0.3, 0.3, 0.4]] * 2}


def slices() -> pd.DataFrame:
    rows = []
    for k, keys in KEYS.items():
        for s, key in enumerate(keys):
            sure = np.full(3, 0.05)
            sure[k] = 0.9  # both neighbours are sure of the true class
            for offset, p in ((-1, sure), (0, np.array(key)), (1, sure)):
                rows.append({"image": f"s{k}{s}.nii", "study_id": f"s{k}{s}", "offset": offset, "split": "test",
                             "label": k, **{f"prob_{n}": float(v) for n, v in zip(NAMES, p)}})
    return pd.DataFrame(rows)


def test_combined_slices_beat_the_key_slice_by_hand():
    cfg = config_from_dict({"data": {"task": "multiclass", "class_names": NAMES}, "evaluate": {"bootstrap": 200},
                            "volume": {"mode": "slice", "neighbours": 1}})
    results, studies = class_augmented_results(slices(), cfg, "mean_prob")
    assert len(studies) == 6 and (studies["slices"] == 3).all()
    # study s00 combined: p_a = (0.4 + 0.9 + 0.9) / 3
    assert studies.set_index("study_id").loc["s00", "prob_a"] == pytest.approx(2.2 / 3)
    test = results["splits"]["test"]
    assert test["macro"]["auc_macro_b"] == pytest.approx(0.75) and test["macro"]["auc_macro_a"] == 1.0
    assert test["per_class"]["a"]["auc_b"] == pytest.approx(5 / 8) and test["per_class"]["c"]["auc_b"] == 1.0
    assert test["accuracy_single"] == pytest.approx(4 / 6) and test["accuracy_combined"] == 1.0
    assert "| test | 6 | 0.750 | 1.000 |" in class_augmented_table(results)
