"""Manifest importers on the real data, patient-grouped validation split, leak refusal."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import DataConfig, config_from_dict
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


def _tree(root, layout: dict[str, dict[str, int]], name="img{:02d}.png"):
    """root/<split folder>/<class>/<n files>: a tiny folder tree of grey PNGs."""
    from PIL import Image

    for split, classes in layout.items():
        for cls, n in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(folder / name.format(i))
    return root


def test_common_split_folder_names_and_hidden_files(tmp_path):
    """Kaggle's Training/Testing layout imports; notebook checkpoints and macOS side files are not data."""
    root = _tree(tmp_path, {"Training": {"glioma": 3, "meningioma": 2}, "Testing": {"glioma": 1, "meningioma": 1}})
    _tree(tmp_path, {"Training/glioma/.ipynb_checkpoints": {"x": 1}, "__MACOSX": {"glioma": 2}})
    (root / "Training" / "glioma" / ".DS_Store").write_bytes(b"\0")
    _tree(tmp_path / "Training" / ".ipynb_checkpoints", {"": {"glioma": 1}})
    m = manifest_from_folder_tree(root, patient_regex="")
    assert m.df.groupby("split").size().to_dict() == {"test": 2, "train": 5}
    assert m.class_names == ["glioma", "meningioma"]
    assert not m.df["image"].str.contains("ipynb|MACOSX|DS_Store").any()


def test_split_folders_mapping(tmp_path):
    root = _tree(tmp_path, {"fit": {"a": 2, "b": 2}, "holdout": {"a": 1, "b": 1}})
    m = manifest_from_folder_tree(root, "", split_folders={"fit": "train", "holdout": "test"})
    assert m.df.groupby("split").size().to_dict() == {"test": 2, "train": 4}
    cfg = config_from_dict({"data": {"root": str(root), "patient_regex": "", "val_fraction": 0.5,
                                     "split_folders": {"fit": "train", "holdout": "test"}}})
    assert set(build_manifest(cfg).df["split"]) == {"train", "val", "test"}
    with pytest.raises(DataError, match=r"split_folders maps folders to \['holdout'\]"):
        manifest_from_folder_tree(root, "", split_folders={"fit": "train", "x": "holdout"})
    with pytest.raises(DataError, match=r"split_folders names \['missing'\]"):
        manifest_from_folder_tree(root, "", split_folders={"missing": "test"})


def test_empty_class_folder_is_an_error_and_a_missing_class_a_warning(tmp_path, caplog):
    root = _tree(tmp_path / "a", {"train": {"glioma": 2, "pituitary": 2, "notumor": 0}, "test": {"glioma": 1}})
    with pytest.raises(DataError, match=r"class folder\(s\) \['train/notumor'\] hold no image"):
        manifest_from_folder_tree(root, "")
    root = _tree(tmp_path / "b", {"train": {"glioma": 2, "pituitary": 2}, "test": {"glioma": 1}})
    with caplog.at_level("WARNING"):
        m = manifest_from_folder_tree(root, "")
    assert m.class_names == ["glioma", "pituitary"]
    assert "split 'test' has no folder for class(es) ['pituitary']" in caplog.text
    root = _tree(tmp_path / "c", {"train": {"glioma": 2}, "test": {"glioma": 1, "pituitary": 1}})
    with pytest.raises(DataError, match=r"\['pituitary'\] have no training folder"):
        manifest_from_folder_tree(root, "")


def test_patient_regex_matching_no_file(tmp_path, caplog):
    root = _tree(tmp_path, {"Training": {"a": 3, "b": 3}, "Testing": {"a": 1, "b": 1}}, name="Tr-gl_{:04d}.jpg")
    with caplog.at_level("WARNING"):
        manifest_from_folder_tree(root)  # the default (person\d+) finds nothing
    assert r"data.patient_regex '(person\\d+)' matches no file name (e.g. 'Tr-gl_0000.jpg')" in caplog.text
    cfg = config_from_dict({"data": {"root": str(root), "val_fraction": 0.5}})
    with pytest.raises(DataError, match=r"matches no file name .*validation is drawn by patient"):
        build_manifest(cfg)
    cfg = config_from_dict({"data": {"root": str(root), "val_fraction": 0.5, "patient_regex": ""}})
    assert (build_manifest(cfg).df["split"] == "val").any()  # '' says: no patient ids in the names


def test_validation_split_by_given_groups():
    from medfit.data.splits import assign_validation_split, patient_kfold

    df = pd.DataFrame({"image": [f"{i}.png" for i in range(40)], "label": [i % 2 for i in range(40)],
                       "patient_id": [f"p{i}" for i in range(40)], "site": "s", "split": "train"})
    m = Manifest(df, ["label"], ["a", "b"], "binary")
    groups = np.arange(40) // 4  # ten units of four rows
    drawn = assign_validation_split(m, 0.2, seed=1, groups=groups)
    val = drawn.df["split"].to_numpy() == "val"
    assert val.any() and all(len(set(val[groups == g])) == 1 for g in range(10))
    for _, test in patient_kfold(m, 5, groups=groups):
        assert set(groups[test]).isdisjoint(set(np.delete(groups, test)))
    with pytest.raises(DataError, match="3 values for 40 manifest rows"):
        assign_validation_split(m, 0.2, groups=[1, 2, 3])
