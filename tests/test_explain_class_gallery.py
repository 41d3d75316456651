"""Gallery groups of a multiclass split, by hand: most confident correct cases per class, then the most frequent
confusions (explaining the class the model called)."""
import pandas as pd

from medfit.explain.class_gallery import class_groups, label_groups
from medfit.task import Task

TASK = Task("multiclass", ("a", "b", "c"))


def test_correct_then_confused_groups():
    pred = pd.DataFrame({"image": [f"i{k}" for k in range(6)], "label": [0, 0, 1, 1, 1, 2],
                         "prob_a": [0.9, 0.6, 0.5, 0.7, 0.1, 0.2], "prob_b": [0.05, 0.3, 0.4, 0.2, 0.8, 0.3],
                         "prob_c": [0.05, 0.1, 0.1, 0.1, 0.1, 0.5]})
    groups = class_groups(pred, TASK, per_group=2)
    names = [g["group"] for g in groups]
    assert names == ["correct a", "correct b", "correct c", "b -> a"]
    assert groups[0]["rows"]["image"].tolist() == ["i0", "i1"]  # p_a 0.9 before 0.6
    confused = groups[3]
    assert confused["rows"]["image"].tolist() == ["i3", "i2"] and confused["class_index"] == 0  # 0.7 before 0.5
    assert confused["count"] == 2


def test_label_groups_at_the_label_thresholds():
    task = Task("multilabel", ("x", "y"), ("x", "y"))
    pred = pd.DataFrame({"image": ["i0", "i1", "i2"], "x": [1, 0, 1], "y": [0, 0, 1],
                         "prob_x": [0.9, 0.7, 0.2], "prob_y": [0.1, 0.2, 0.6]})
    groups = {g["group"]: g["rows"]["image"].tolist() for g in label_groups(pred, task, {"x": 0.5, "y": 0.5})}
    assert groups["x TP"] == ["i0"] and groups["x FP"] == ["i1"] and groups["x FN"] == ["i2"]
    assert groups["y TP"] == ["i2"] and groups["y FN"] == []
