"""Comparing two multiclass runs read from their folders: cases matched by image whatever the row order, the
per-class DeLong/Holm and macro bootstrap of the leaf on the matched arrays, refusals, the verb and the side-by-side
page."""
import json

import numpy as np
import pandas as pd
import pytest

from medfit.cli import main
from medfit.config import config_from_dict
from medfit.errors import DataError
from medfit.evaluate.compare_class_runs import compare_class_runs
from medfit.evaluate.compare_classes import compare_class_aucs
from medfit.evaluate.run import evaluate_run
from medfit.report.multi import write_multi_report
from medfit.run_folder import RunFolder

NAMES = ["NORMAL", "bacterial", "viral"]


def probabilities(y: np.ndarray, skill: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), 3)) + skill * np.eye(3)[y]
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def make_run(tmp_path, name: str, y: np.ndarray, p: np.ndarray, task: str = "multiclass", order=None) -> RunFolder:
    run = RunFolder(tmp_path / name)
    run.write_config(config_from_dict({"name": name, "data": {"task": task, "class_names": NAMES},
                                       "evaluate": {"bootstrap": 20}}))
    table = pd.DataFrame({"image": [f"img{i}.png" for i in range(len(y))], "split": ["val", "test"] * (len(y) // 2),
                          "label": y, **{f"prob_{n}": p[:, k] for k, n in enumerate(NAMES)}})
    run.write_csv("predictions", table.iloc[order] if order is not None else table)
    return run


@pytest.fixture
def two_runs(tmp_path):
    y = np.random.default_rng(0).integers(0, 3, 120)
    pa, pb = probabilities(y, 2.5, 1), probabilities(y, 0.5, 2)
    order = np.random.default_rng(3).permutation(len(y))  # b wrote its rows in another order
    return y, pa, pb, make_run(tmp_path, "a", y, pa), make_run(tmp_path, "b", y, pb, order=order)


def test_matched_cases_give_the_leaf_comparison(two_runs):
    y, pa, pb, a, b = two_runs
    r = compare_class_runs(a, b, ["test"], n_bootstrap=200)
    test = np.arange(len(y)) % 2 == 1
    ref = compare_class_aucs(y[test], pa[test], pb[test], NAMES, 200)
    assert r["splits"]["test"]["n"] == 60 and r["class_names"] == NAMES
    for name in NAMES:
        assert r["splits"]["test"]["per_class"][name]["auc_a"] == pytest.approx(ref["per_class"][name]["auc_a"])
        assert r["splits"]["test"]["per_class"][name]["p_holm"] == pytest.approx(ref["per_class"][name]["p_holm"])
    assert r["splits"]["test"]["macro"]["difference"] == pytest.approx(ref["macro"]["difference"])
    assert r["splits"]["test"]["macro"]["difference"] > 0.15  # the skilled run is better


def test_refuses_other_tasks_and_disagreeing_labels(tmp_path, two_runs):
    y, pa, _, a, _ = two_runs
    flipped = make_run(tmp_path, "flipped", (y + 1) % 3, pa)
    with pytest.raises(DataError, match="disagree on the labels of 120 shared cases"):
        compare_class_runs(a, flipped)
    binary = RunFolder(tmp_path / "bin")
    binary.write_config(config_from_dict({"name": "bin", "data": {"task": "binary", "class_names": ["n", "p"]}}))
    binary.write_csv("predictions", pd.DataFrame({"image": ["img0.png"], "split": ["test"], "label": [0],
                                                  "prob": [0.1]}))
    with pytest.raises(DataError, match="predict different things"):
        compare_class_runs(a, binary)


def test_compare_verb_and_side_by_side_page(two_runs, tmp_path, capsys):
    _, _, _, a, b = two_runs
    assert main(["compare", str(a.path), str(b.path), "--bootstrap", "100", "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "Per-class paired DeLong (Holm)" in out and "macro (bootstrap)" in out and "viral" in out
    assert set(json.loads((tmp_path / "c.json").read_text())["splits"]) == {"test", "val"}
    for run in (a, b):
        evaluate_run(run)
    html = write_multi_report([a, b], tmp_path / "side.html").read_text()
    assert "Paired comparisons per class" in html and "paired bootstrap (1000)" in html
    assert html.count("<img") == 1 and "per-class ROC curves of the runs" in html


def study_run(tmp_path, name: str, y: np.ndarray, p: np.ndarray) -> RunFolder:
    """A multiclass study run whose two vertebral bodies per volume share one key slice (told apart by study_id)."""
    run = make_run(tmp_path, name, y, p)
    table = run.read_predictions()
    n = len(table) // 2
    table["image"] = [f"vol{i % n}.nii.gz" for i in range(len(table))]
    table["slice_index"] = 12
    table["study_id"] = [f"vol{i % n}.nii.gz#{1 + i // n}" for i in range(len(table))]
    table["split"] = [("val", "test")[(i % n) % 2] for i in range(len(table))]
    run.write_csv("predictions", table)
    return run


def test_bodies_sharing_a_slice_are_paired_by_their_study(tmp_path):
    """Matched on image and slice alone, 120 rows of 60 volumes pair many-to-many (240 pairs, D12)."""
    y = np.random.default_rng(0).integers(0, 3, 120)
    a = study_run(tmp_path, "a", y, probabilities(y, 2.0, 1))
    b = study_run(tmp_path, "b", y, probabilities(y, 1.0, 2))
    r = compare_class_runs(a, b)["splits"]["test"]
    assert r["n"] == 60


def test_repeated_rows_are_refused_in_one_line(tmp_path):
    y = np.random.default_rng(0).integers(0, 3, 120)
    a = study_run(tmp_path, "a", y, probabilities(y, 2.0, 1))
    b = study_run(tmp_path, "b", y, probabilities(y, 1.0, 2))
    b.write_csv("predictions", b.read_predictions().drop(columns=["study_id"]))
    with pytest.raises(DataError, match="several rows") as err:
        compare_class_runs(a, b)
    assert "\n" not in str(err.value)
