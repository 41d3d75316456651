"""Audit on real images: PneumoniaMNIST's known duplicates, planted chest X-ray copies/conflicts/shortcuts, clean pairs."""
import io

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfit.audit import audit_manifest
from medfit.audit.duplicates import NEAR_THRESHOLD
from medfit.config import AuditConfig
from medfit.data.manifest import manifest_from_folder_tree, manifest_from_medmnist

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
CHEST = "chest-xray-pneumonia-224"
PATIENT_REGEX = r"((?:NORMAL2-)?IM-\d+|person\d+)"


@pytest.fixture(scope="module")
def chest(shared_data) -> pd.DataFrame:
    """The chest X-ray manifest (5840 rows; patient ids scoped per split folder as the demo config does)."""
    return manifest_from_folder_tree(shared_data / CHEST, PATIENT_REGEX, patient_scope="split").df


def pick(df: pd.DataFrame, per_class: int, split: str = "train", offset: int = 0) -> pd.DataFrame:
    """A deterministic spread of per_class images of each class from one split."""
    parts = []
    for _, group in df[df["split"] == split].groupby("label"):
        step = len(group) // per_class
        parts.append(group.iloc[offset::step][:per_class])
    return pd.concat(parts, ignore_index=True)


def test_pneumoniamnist_duplicates_and_train_val_leaks(shared_data, tmp_path):
    """The reconstructed file holds 18 duplicate pairs inside train (17 pneumonia, 1 normal: the "17" of the
    MedMNIST note counts pairs, i.e. images that repeat another, in the pneumonia half), 3 pairs inside test,
    and 8 groups that repeat a training image in val."""
    manifest = manifest_from_medmnist(shared_data / NPZ)
    result = audit_manifest(manifest.df, ["label"], ["normal", "pneumonia"],
                            cfg=AuditConfig(near_duplicates=False), cache_dir=tmp_path)
    groups = result.clusters
    assert all(c["kind"] == "exact" for c in groups)
    train_pairs = [c for c in groups if c["splits"].count("train") >= 2]
    assert len(train_pairs) == 18 and sum(c["splits"].count("train") - 1 for c in train_pairs) == 18
    assert sorted(c["labels"][0] for c in train_pairs).count(1) == 17
    assert len([c for c in groups if c["splits"] == ["test", "test"]]) == 3
    assert len(result.leaks) == 8 and all(set(c["splits"]) == {"train", "val"} for c in result.leaks)
    assert not result.conflicts and not result.ok

    deduped = audit_manifest(manifest.df, ["label"], cfg=AuditConfig(near_duplicates=False, dedupe=True),
                             cache_dir=tmp_path)  # fingerprints from the cache this time
    assert deduped.ok and len(deduped.removed) == 10  # two leaking groups hold two training copies each
    assert {r["split"] for r in deduped.removed} == {"train"}
    assert len(deduped.kept) == len(manifest.df) - 10


def _jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def _crop(arr, top, bottom, left, right):
    h, w = arr.shape[:2]
    return arr[int(h * top):h - int(h * bottom), int(w * left):w - int(w * right)]


PLANTS = {
    "resize": lambda a: cv2.resize(a, (160, 160), interpolation=cv2.INTER_AREA),
    "jpeg": lambda a: _jpeg(a, 30),
    "crop": lambda a: _crop(a, 0.04, 0.04, 0.04, 0.04),
    "crop_corner": lambda a: _crop(a, 0.04, 0, 0.04, 0),
    "contrast": lambda a: (255 * (a / 255.0) ** 0.8).astype(np.uint8),
    "all": lambda a: _jpeg(cv2.resize(_crop(np.clip(a * 0.8 + 30, 0, 255).astype(np.uint8), .03, .03, .03, .03),
                                      (300, 260), interpolation=cv2.INTER_CUBIC), 50),
}


def test_planted_copies_across_splits_and_a_label_conflict_are_found(chest, tmp_path):
    base = pick(chest, 40, "train")
    originals = base.iloc[[3, 11, 19, 45, 53, 61]].reset_index(drop=True)
    rows = []
    for (name, plant), (_, src) in zip(PLANTS.items(), originals.iterrows()):
        path = tmp_path / f"{name}.png"
        Image.fromarray(plant(np.asarray(Image.open(src["image"])))).save(path)
        rows.append({**src.to_dict(), "image": str(path), "split": "test", "patient_id": f"copy-{name}"})
    flipped = base.iloc[30]
    conflict = tmp_path / "relabelled.png"
    Image.open(flipped["image"]).save(conflict)  # same pixels, other label, same split
    rows.append({**flipped.to_dict(), "image": str(conflict), "label": 1 - flipped["label"], "patient_id": "copy-x"})
    df = pd.concat([base, pd.DataFrame(rows)], ignore_index=True)

    result = audit_manifest(df, ["label"], ["NORMAL", "PNEUMONIA"])
    leaks = {frozenset(c["images"]) for c in result.leaks}
    for name, (_, src) in zip(PLANTS, originals.iterrows()):
        assert frozenset({src["image"], str(tmp_path / f"{name}.png")}) in leaks, name
    assert len(result.leaks) == len(PLANTS)
    assert [set(c["images"]) for c in result.conflicts] == [{flipped["image"], str(conflict)}]
    # no other group: the 80 clean originals stay apart (exact twins inside the data would be same-label groups)
    assert all(c["cross_split"] or c["conflict"] or c["kind"] == "exact" for c in result.clusters)
    assert "6 span splits" in result.summary and "1 with conflicting labels" in result.summary

    deduped = audit_manifest(df, ["label"], ["NORMAL", "PNEUMONIA"], cfg=AuditConfig(dedupe=True))
    assert {r["image"] for r in deduped.removed} == {*originals["image"], flipped["image"], str(conflict)}
    assert deduped.ok


def test_clean_chest_pairs_stay_below_the_false_positive_rate(chest):
    """400 distinct real X-rays (79,800 pairs): at the documented threshold none may pair up (measured rate on all
    17 million pairs of the set: 0, see bench/audit_near_duplicates.py)."""
    sample = chest.sample(400, random_state=1).reset_index(drop=True)
    result = audit_manifest(sample, ["label"], cfg=AuditConfig(near_threshold=NEAR_THRESHOLD))
    near = [c for c in result.clusters if c["kind"] == "near"]
    assert near == []


def test_planted_shortcut_is_flagged_and_named(chest, tmp_path):
    base = pick(chest, 50, "train", offset=1)
    rows = []
    for i, src in base.iterrows():
        arr = np.asarray(Image.open(src["image"]))
        if src["label"] == 0:  # every NORMAL image saved at another size
            arr = cv2.resize(arr, (256, 256), interpolation=cv2.INTER_CUBIC)
        path = tmp_path / f"{i:03d}.jpg"
        Image.fromarray(arr).save(path, quality=95)
        rows.append({**src.to_dict(), "image": str(path)})
    planted = audit_manifest(pd.DataFrame(rows), ["label"], ["NORMAL", "PNEUMONIA"])
    clean = audit_manifest(base, ["label"], ["NORMAL", "PNEUMONIA"])

    warning = " ".join(planted.shortcuts["warnings"])
    assert "PNEUMONIA" in warning and "image height (AUC 1.00)" in warning and "image width (AUC 1.00)" in warning
    assert planted.shortcuts["classes"]["PNEUMONIA"]["auc"] > 0.99
    assert planted.shortcuts["profile"]["NORMAL"]["sizes"] == {"256x256": 50}
    assert clean.shortcuts["classes"]["PNEUMONIA"]["feature_auc"]["image height"] == 0.5
    assert "image height" not in " ".join(clean.shortcuts["warnings"])
    assert planted.ok  # warnings never stop training


def test_dicom_copy_in_two_splits_leaks_by_pixels_and_by_header_uids(shared_data, tmp_path):
    import shutil

    nema = shared_data / "dicom-samples-nema-wg04"
    copy = tmp_path / "renamed.dcm"
    shutil.copy(nema / "RG1_J2KI.dcm", copy)  # the same instance exported twice under another name
    df = pd.DataFrame({"image": [str(nema / "RG1_J2KI.dcm"), str(nema / "MR2_UNCR.dcm"), str(nema / "693_UNCR.dcm"),
                                 str(copy)],
                       "label": [0, 1, 0, 0], "patient_id": ["a", "b", "c", "d"], "site": "s0",
                       "split": ["train", "train", "train", "test"]})
    result = audit_manifest(df, ["label"], ["x", "y"])
    assert [set(c["images"]) for c in result.leaks] == [{str(nema / "RG1_J2KI.dcm"), str(copy)}]
    assert {leak["kind"] for leak in result.id_leaks} == {"study", "series", "instance"}
    profile = result.shortcuts["profile"]
    assert profile["x"]["photometric"] == {"MONOCHROME1": 2, "MONOCHROME2": 1}
    assert profile["y"]["modality"] == {"MR": 1} and profile["y"]["bit_depth"] == {"12": 1}
    deduped = audit_manifest(df, ["label"], ["x", "y"], cfg=AuditConfig(dedupe=True))
    assert deduped.ok and [r["image"] for r in deduped.removed] == [str(nema / "RG1_J2KI.dcm")]
