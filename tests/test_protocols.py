"""k-fold cross-validation and external-site validation on real PneumoniaMNIST subsets; pseudo-sites; site table."""
import json

import numpy as np
import pandas as pd
import pytest

from medfit.commands.pipeline import train_and_evaluate
from medfit.config import config_from_dict
from medfit.data.manifest import Manifest
from medfit.errors import DataError
from medfit.evaluate.protocols import assign_pseudo_sites, cross_validate, external_validation, site_table

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def small_config(shared_data, tmp_path, name):
    return config_from_dict({
        "name": name, "seed": 0, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "limit_per_split": 160,
                 "val_fraction": 0.2},
        "model": {"name": "test_resnet"},
        "train": {"epochs": 2, "batch_size": 64, "optim": {"lr": 0.003}, "logger": "csv", "progress_bar": False},
        "evaluate": {"bootstrap": 50},
    })


def test_kfold_cross_validation_on_real_images(shared_data, tmp_path):
    cfg = small_config(shared_data, tmp_path, "cv")
    result = cross_validate(cfg, 3, None, train_and_evaluate)
    folds = result["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    oof = pd.read_csv(tmp_path / "runs" / "cv-cv" / "oof_predictions.csv")
    # every development image is predicted exactly once, out of fold, and folds are patient-disjoint
    assert len(oof) == sum(f["n"] for f in folds) == 320 and oof["image"].is_unique
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1
    aucs = [f["auc"] for f in folds]
    assert result["summary"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert result["summary"]["auc"]["sd"] == pytest.approx(np.std(aucs, ddof=1))
    pooled = result["pooled"]
    assert pooled["n"] == 320 and pooled["auc_ci"][0] < pooled["auc"] < pooled["auc_ci"][1] and pooled["auc"] > 0.6
    assert (tmp_path / "runs" / "cv-cv" / "cv.csv").is_file()


def test_external_validation_by_pseudo_sites(shared_data, tmp_path):
    cfg = small_config(shared_data, tmp_path, "ext")
    # the npz is label-sorted: the training rows of pseudo-sites 1-2 (the lowest ids) are all NORMAL, which the
    # pre-flight refuses; sites 2-3 train on both classes
    result = external_validation(cfg, ["pseudo-site-2", "pseudo-site-3"], None, train_and_evaluate, pseudo_sites=3)
    assert "pseudo-sites" in result["protocol"] and result["external_sites"] == ["pseudo-site-1"]
    rows = result["rows"]
    external = [r for r in rows if r["split"] == "external"]
    assert len(external) == 1 and external[0]["site"] == "pseudo-site-1" and external[0]["role"] == "external"
    internal_test = [r for r in rows if r["split"] == "test"]
    assert {r["site"] for r in internal_test} == {"pseudo-site-2", "pseudo-site-3"}
    assert all(r["role"] == "internal" for r in internal_test)
    pred = pd.read_csv(tmp_path / "runs" / "ext-sites" / "predictions.csv")
    assert external[0]["n"] == (pred["split"] == "external").sum() > 50
    manifest = pd.read_csv(tmp_path / "runs" / "ext-sites" / "manifest.csv")
    assert set(manifest.loc[manifest["split"] == "train", "site"]) <= {"pseudo-site-2", "pseudo-site-3"}
    saved = json.loads((tmp_path / "runs" / "ext-sites" / "sites.json").read_text())
    assert saved["rows"][0]["site"] == rows[0]["site"]
    with pytest.raises(DataError, match="not in the data"):
        external_validation(cfg, ["site-x"], None, train_and_evaluate, pseudo_sites=3)


def test_pseudo_sites_are_patient_id_ranges_and_site_table_by_hand():
    df = pd.DataFrame({"image": [f"i{k}" for k in range(8)], "label": [0, 1] * 4, "split": "train",
                       "patient_id": ["train/person10", "test/person2", "train/person2", "train/IM-0003",
                                      "train/person10", "test/person7", "train/IM-0001", "train/person30"],
                       "site": "site0"})
    out = assign_pseudo_sites(Manifest(df), 2).df
    assert out.groupby("patient_id")["site"].nunique().max() == 1
    by_pid = dict(zip(out["patient_id"], out["site"]))
    # sorted by id number: IM-0001, test/person2, train/person2, IM-0003 | test/person7, person10, person30
    assert by_pid["train/IM-0001"] == by_pid["test/person2"] == "pseudo-site-1"
    assert by_pid["train/person30"] == by_pid["test/person7"] == "pseudo-site-2"
    pred = pd.DataFrame({"split": ["test"] * 4 + ["external"] * 4, "site": ["a"] * 4 + ["b"] * 4,
                         "label": [0, 0, 1, 1, 0, 1, 1, 1], "prob": [0.1, 0.6, 0.7, 0.4, 0.2, 0.9, 0.3, 0.8]})
    rows = site_table(pred, "label", 0.5, ["a"], bootstrap=0)
    a, b = rows
    assert a["site"] == "a" and a["role"] == "internal" and a["sensitivity"] == 0.5 and a["specificity"] == 0.5
    assert b["split"] == "external" and b["sensitivity"] == pytest.approx(2 / 3) and b["auc"] == 1.0  # 0.2 is below every positive
