"""Manifest importers on the real data, patient-grouped validation split, leak refusal."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import ExperimentConfig, DataConfig, config_from_dict
from medfit.data.manifest import (Manifest, build_manifest, check_patient_leaks, manifest_from_csv,
                                  manifest_from_folder_tree, manifest_from_medmnist)
from medfit.errors import DataError

DEMO_REGEX = r"((?:NORMAL2-)?IM-\d+|person\d+)"


def test_chest_xray_tree(shared_data):
    m = manifest_from_folder_tree(shared_data / "chest-xray-pneumonia-224", DEMO_REGEX, patient_scope="split")
    counts = m.df.groupby(["split", "label"]).size().to_dict()
    assert m.class_names == ["NORMAL", "PNEUMONIA"] and m.task == "binary"
    assert counts == {("test", 0): 234, ("test", 1): 390, ("train", 0): 1341, ("train", 1): 3875}
    first = m.df[m.df["image"].str.endswith("person1000_bacteria_2931.jpeg")].iloc[0]
    assert first["patient_id"] == "train/person1000" and first["label"] == 1
    # several images per pneumonia patient: fewer patients than images
    train = m.df[m.df["split"] == "train"]
    assert train[train["label"] == 1]["patient_id"].nunique() < 3875


def test_validation_split_is_patient_grouped_and_stratified(shared_data):
    cfg = config_from_dict({"data": {"root": str(shared_data / "chest-xray-pneumonia-224"), "patient_regex": DEMO_REGEX,
                                     "patient_scope": "split", "val_fraction": 0.1}})
    m = build_manifest(cfg)
    val, train = m.split("val").df, m.split("train").df
    assert 0.07 < len(val) / (len(val) + len(train)) < 0.13
    assert not set(val["patient_id"]) & set(train["patient_id"])
    assert abs(val["label"].mean() - train["label"].mean()) < 0.05
    assert len(m.split("test")) == 624


def test_global_patient_scope_refuses_the_overlapping_ids(shared_data):
    # Kermany's numbering restarts in test/: with global ids the same 'person1' sits in train and test
    cfg = config_from_dict({"data": {"root": str(shared_data / "chest-xray-pneumonia-224"), "patient_regex": DEMO_REGEX}})
    with pytest.raises(DataError, match="appear in more than one split"):
        build_manifest(cfg)


def test_leak_refusal_lists_the_ids():
    df = pd.DataFrame({"image": list("abcd"), "label": [0, 1, 0, 1], "patient_id": ["p1", "p1", "p2", "p3"],
                       "site": "s", "split": ["train", "test", "train", "test"]})
    with pytest.raises(DataError) as err:
        check_patient_leaks(Manifest(df, ["label"], ["0", "1"]))
    assert "p1: test/train" in str(err.value) and "p2" not in str(err.value)


def test_medmnist_import(shared_data):
    m = manifest_from_medmnist(shared_data / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz")
    assert m.df["split"].value_counts().to_dict() == {"train": 4708, "test": 624, "val": 524}
    assert m.df["label"].sum() == 3494 + 389 + 390
    assert m.df["image"].iloc[0].endswith("::train_images::0")


def test_csv_import_unknown_and_missing_labels(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.png,cat,p1\nb.png,dog,p2\n")
    cfg = DataConfig(class_names=["cat", "mouse"])
    with pytest.raises(DataError, match=r"unknown labels \['dog'\]"):
        manifest_from_csv(tmp_path / "m.csv", cfg)
    (tmp_path / "n.csv").write_text("image,label,patient_id\na.png,,p1\nb.png,1,p2\n")
    with pytest.raises(DataError, match="missing labels"):
        manifest_from_csv(tmp_path / "n.csv", DataConfig())
    (tmp_path / "o.csv").write_text("image,label,patient_id,split\na.png,cat,p1,train\nb.png,mouse,p2,test\n")
    m = manifest_from_csv(tmp_path / "o.csv", cfg)
    assert m.df["label"].tolist() == [0, 1] and m.df["image"][0] == str(tmp_path / "a.png")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        manifest_from_folder_tree(tmp_path / "nothing")
