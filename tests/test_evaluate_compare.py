"""medfit compare: two runs' predictions matched row by row (image, study, slice, offset, ROI), never many-to-many."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfit.config import config_from_dict
from medfit.errors import DataError
from medfit.evaluate.compare import compare_runs
from medfit.run_folder import RunFolder


def make_run(path, table: pd.DataFrame) -> RunFolder:
    run = RunFolder(path)
    run.write_config(config_from_dict({"name": path.name}))
    run.write_predictions(table)
    return run


def study_rows(seed: int) -> pd.DataFrame:
    """12 test studies (6 positive) of one volume each, key slice +- 1 as three rows per study."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(12):
        for offset in (-1, 0, 1):
            rows.append({"image": f"/data/vol{s}.nii.gz", "study_id": f"vol{s}", "slice_index": 20 + offset,
                         "offset": offset, "split": "test", "label": s % 2})
    table = pd.DataFrame(rows)
    table["prob"] = np.clip(0.35 * table["label"] + rng.uniform(0, 0.65, len(table)), 0, 1)
    return table


def test_study_runs_are_matched_one_row_to_one_row(tmp_path):
    """D12: matched on image and split only, three rows per volume became nine pairs."""
    a, b = study_rows(0), study_rows(1)
    result = compare_runs(make_run(tmp_path / "a", a), make_run(tmp_path / "b", b))
    r = result["splits"]["test"]
    assert r["n"] == 36 and r["unmatched_a"] == r["unmatched_b"] == 0
    assert r["auc_a"] == pytest.approx(roc_auc_score(a["label"], a["prob"]))
    assert r["auc_b"] == pytest.approx(roc_auc_score(b["label"], b["prob"]))


def test_vertebrae_sharing_a_slice_are_told_apart_by_their_roi(tmp_path):
    """Two vertebral bodies of one volume may share their key slice: the study id (image#roi) separates them."""
    a = study_rows(0)
    a = pd.concat([a.assign(study_id=a["study_id"] + "#1"), a.assign(study_id=a["study_id"] + "#2")],
                  ignore_index=True)
    b = a.assign(prob=a["prob"][::-1].to_numpy())
    r = compare_runs(make_run(tmp_path / "a", a), make_run(tmp_path / "b", b))["splits"]["test"]
    assert r["n"] == 72 and r["auc_b"] == pytest.approx(roc_auc_score(b["label"], b["prob"]))


def test_runs_at_different_levels_are_refused(tmp_path):
    """A study run (three rows per volume) against an image-level run cannot be paired row by row."""
    a = study_rows(0)
    b = a[a["offset"] == 0].drop(columns=["study_id", "slice_index", "offset"])
    with pytest.raises(DataError, match="several rows") as err:
        compare_runs(make_run(tmp_path / "a", a), make_run(tmp_path / "b", b))
    assert "\n" not in str(err.value)
