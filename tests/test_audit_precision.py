"""Audit precision and reporting: near-duplicates need a second check, findings need direct pairs, dedupe is counted
and keeps the findings before and after, a stop carries the whole summary, degenerate inputs are refused."""
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfit.audit import audit_manifest, run_audit
from medfit.audit import run as audit_run
from medfit.config import AuditConfig, config_from_dict
from medfit.data.manifest import Manifest
from medfit.errors import DataError
from medfit.io import read_volume
from medfit.report.audit_section import audit_section
from medfit.run_folder import RunFolder
from tests.test_audit import _save, add_row, smooth_image, write_set

SPINE = "spine-mri-vb-sagittal"
# slices of two T1 exams of one spine region whose perceptual hashes lie 28-32 bits apart: different images, which
# the hash alone (threshold 32) paired, like the different brain tumours of the report
T1_PAIRS = [(20, 21), (20, 26), (22, 27), (23, 22), (39, 43), (40, 43)]


def test_different_exams_within_the_hash_threshold_are_not_duplicates(shared_data, tmp_path):
    a = read_volume(shared_data / SPINE / "VB1_06_AKs6.nii.gz").array
    b = read_volume(shared_data / SPINE / "VB1_08_AKs8.nii.gz").array
    rows = []
    for k, (i, j) in enumerate(T1_PAIRS):
        for vol, s, label, name in ((a, i, 0, "aks6"), (b, j, 1, "aks8")):
            rows.append({"image": _save(tmp_path / f"{name}_{k}.png", vol[s].astype(np.uint8)), "label": label,
                         "patient_id": name, "site": "s", "split": "train"})
    result = audit_manifest(pd.DataFrame(rows), ["label"], ["aks6", "aks8"], cache_dir=tmp_path / "cache")
    assert result.conflicts == [] and result.ok
    check = result.near_check
    assert check["rejected"] >= len(T1_PAIRS) and all(r["similarity"] < 0.965 for r in check["closest_rejected"])
    # a real copy of one of those slices (resized + JPEG) is still found, with its evidence
    copy = np.asarray(Image.fromarray(a[20].astype(np.uint8)).resize((300, 300)))
    rows.append({"image": _save(tmp_path / "copy.jpg", copy, quality=50), "label": 1, "patient_id": "x",
                 "site": "s", "split": "test"})
    result = audit_manifest(pd.DataFrame(rows), ["label"], ["aks6", "aks8"], cache_dir=tmp_path / "cache")
    (leak,) = result.leaks
    assert set(leak["images"]) >= {str(tmp_path / "aks6_0.png"), str(tmp_path / "copy.jpg")}
    assert leak["leak_pairs"][0]["similarity"] > 0.965 and leak["leak_pairs"][0]["distance"] <= 32
    assert any("copy.jpg (test)" in e and "similarity" in e for e in result.errors)


def _chain(tmp_path, labels, splits):
    """Three distinct images whose near pairs are forced to 0-1 and 1-2 only (a chain: 0 and 2 are no pair)."""
    df = write_set(tmp_path, 3, splits=splits, labels=labels)
    return df, [(0, 1, 30, 0.99), (1, 2, 30, 0.99)]


def test_conflict_and_dedupe_need_a_direct_pair(tmp_path, monkeypatch):
    df, pairs = _chain(tmp_path, [0, 0, 1], ["train"] * 3)
    monkeypatch.setattr(audit_run, "cached_near_pairs", lambda *a, **k: pairs)
    result = audit_manifest(df, ["label"], ["a", "b"])
    (conflict,) = result.conflicts
    # the evidence is the direct pair 1-2, never 0-2 through the chain
    assert [set(e["images"]) for e in conflict["conflict_pairs"]] == [{df.loc[1, "image"], df.loc[2, "image"]}]
    deduped = audit_manifest(df, ["label"], ["a", "b"], cfg=AuditConfig(dedupe=True))
    assert {r["image"] for r in deduped.removed} == {df.loc[1, "image"], df.loc[2, "image"]}  # not image 0
    assert deduped.ok


def test_a_chain_to_a_test_image_removes_only_direct_copies(tmp_path, monkeypatch):
    df, pairs = _chain(tmp_path, [0, 0, 0], ["train", "train", "test"])
    monkeypatch.setattr(audit_run, "cached_near_pairs", lambda *a, **k: pairs)
    deduped = audit_manifest(df, ["label"], ["a", "b"], cfg=AuditConfig(dedupe=True))
    assert [r["image"] for r in deduped.removed] == [df.loc[1, "image"]]


def test_dedupe_keeps_findings_before_and_after_and_counts_them(tmp_path):
    """X twice in train and once in test (a leak), Y twice in train (within one split): after dedupe one
    within-split group with one extra copy is left, not the two groups / three copies the old count gave."""
    df = write_set(tmp_path, 6, splits=["train"] * 4 + ["test"] * 2, labels=[0, 1, 0, 1, 0, 1])
    x, y = np.asarray(Image.open(df.loc[0, "image"])), np.asarray(Image.open(df.loc[1, "image"]))
    df = add_row(df, image=_save(tmp_path / "x_train.png", x), label=0)
    df = add_row(df, image=_save(tmp_path / "x_test.png", x), label=0, split="test")
    df = add_row(df, image=_save(tmp_path / "y_twin.png", y), label=1)
    result = audit_manifest(df, ["label"], ["a", "b"], cfg=AuditConfig(dedupe=True))
    assert result.ok and len(result.removed) == 2
    assert result.before == {"span_splits": 1, "conflicts": 0, "id_leaks": 0, "within_split_groups": 1,
                             "within_split_extra": 1}
    assert [w for w in result.warnings if "within one split" in w][0].startswith("1 group(s) of duplicate images "
                                                                                 "within one split (1 extra copies)")
    counts = result.removed_counts
    assert counts["by_class"]["a"] == {"removed": 2, "of": 5, "share": 0.4}
    assert counts["by_split"] == {"train": 2} and counts["by_reason"] == {"copy of a held-out image": 2}
    assert "before dedupe: 1 span splits" in result.summary and "a 2 of 5; train 2" in result.summary
    assert any("40% of class 'a'" in w for w in result.warnings)
    folder = tmp_path / "run"
    saved = json.loads(result.write(RunFolder(folder)).read_text())
    assert saved["before_dedupe"]["span_splits"] == 1 and saved["removed_counts"]["total"] == 2
    assert len(pd.read_csv(folder / "audit_removed.csv")) == 2
    assert saved["counts"] == {"span_splits": 0, "conflicts": 0, "id_leaks": 0, "within_split_groups": 1,
                               "within_split_extra": 1}
    # the report shows both columns: the leak found before dedupe does not disappear from the page
    page = audit_section(RunFolder(folder))
    row = lambda text: re.search(rf"<tr><td>{text}</td><td>(\d+)</td><td>(\d+)</td></tr>", page).groups()
    assert "<th>before dedupe</th><th>after dedupe</th>" in page
    assert row("duplicate groups spanning splits") == ("1", "0") and row("extra copies within one split") == ("1", "1")
    assert "Removed by dedupe: 2 image(s)" in page and "<td>a</td><td>2</td><td>5</td><td>40.0%</td>" in page


def test_a_stop_carries_the_summary_and_the_shortcut_warning(tmp_path, capsys):
    from medfit.audit import AuditError
    from medfit.cli import main

    rows = []
    for i in range(40):  # class b stored at another size: a shortcut warning
        rows.append({"image": _save(tmp_path / f"{i}.png", smooth_image(i, 64 if i % 2 == 0 else 80)),
                     "label": i % 2, "patient_id": f"p{i}", "site": "s", "split": "train" if i < 30 else "test"})
    df = pd.DataFrame(rows)
    df = add_row(df, image=_save(tmp_path / "leak.png", np.asarray(Image.open(df.loc[0, "image"]))), split="test")
    manifest = Manifest(df, ["label"], ["a", "b"], "binary")
    cfg = config_from_dict({"output_dir": str(tmp_path / "runs"), "audit": {"cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(AuditError) as err:
        run_audit(cfg, manifest, RunFolder(tmp_path / "run"), log_findings=False)
    assert isinstance(err.value, DataError) and "\n" not in str(err.value)
    assert err.value.summary.startswith("audit of 41 images") and "1 span splits" in err.value.summary
    assert any("shortcut signal" in w and "image size" in w for w in err.value.warnings)

    df.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "exp.yaml").write_text(f"name: x\noutput_dir: {tmp_path / 'runs'}\ndata: {{source: csv, root: "
                                       f"{tmp_path / 'm.csv'}}}\naudit: {{cache_dir: {tmp_path / 'cache'}}}\n")
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "exp.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the whole audit, then the one error line (printed once: run_audit leaves a stop to whoever reports it)
    assert err[0].startswith("audit of 41 images") and "1 span splits" in err[0]
    assert any(e.startswith("warning: shortcut signal: class '1'") and "What to try" in e for e in err)
    assert err[-1].startswith("error: dataset audit: 1 duplicate group(s) span splits")
    assert sum("audit of 41 images" in e for e in err) == 1
    for verb, extra in (("train", []), ("tune", ["--study", "s"])):  # every verb that audits stops the same way
        assert main([verb, str(tmp_path / "exp.yaml"), "--name", verb, *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[0] == err[0] and lines[-1].startswith("error: dataset audit:"), (verb, lines)
        assert any(e.startswith("warning: shortcut signal") for e in lines), verb


def test_colour_mode_shortcut_is_named_with_advice(tmp_path):
    rows = []
    for i in range(60):
        label = i % 3
        img = smooth_image(i, 64)
        if label == 2:  # class c alone stored as RGB (grey content), like the brain MRI set
            img = np.repeat(img[..., None], 3, axis=2)
        rows.append({"image": _save(tmp_path / f"{i}.png", img), "label": label, "patient_id": str(i),
                     "site": "s", "split": "train"})
    result = audit_manifest(pd.DataFrame(rows), ["label"], ["a", "b", "c"], task="multiclass")
    (warning,) = result.shortcuts["warnings"]
    assert "class 'c'" in warning and "colour mode: " in warning
    assert "'RGB' in 100% of 'c' vs 0% of the rest" in warning and "convert the RGB files to greyscale" in warning
    assert result.shortcuts["profile"]["c"]["colour"] == {"grey as RGB": 20}


def test_empty_manifest_and_nan_images_are_refused_in_one_line(tmp_path):
    empty = pd.DataFrame(columns=["image", "label", "patient_id", "site", "split"])
    with pytest.raises(DataError, match="no images to audit"):
        audit_manifest(empty, ["label"])
    rows = []
    for i in range(6):
        path = tmp_path / f"nan{i}.tif"
        Image.fromarray(np.full((32, 32), np.nan, np.float32)).save(path)
        rows.append({"image": str(path), "label": i % 2, "patient_id": str(i), "site": "s",
                     "split": "train" if i < 3 else "test"})
    with pytest.raises(DataError) as err:
        audit_manifest(pd.DataFrame(rows), ["label"])
    text = str(err.value)
    # the image reader refuses the first such file (the audit's own check counts them when a reader lets NaNs through)
    assert "nan0.tif" in text and "NaN" in text and "\n" not in text
    assert "\n" not in text and len(text) < 400


def test_validation_drawn_around_duplicate_groups_is_no_leak(tmp_path):
    from medfit.audit import split_groups
    from medfit.data.splits import assign_validation_split

    df = write_set(tmp_path, 30, splits=["train"] * 30)
    for k in range(10):  # ten images with a copy each, under another patient id
        df = add_row(df, image=_save(tmp_path / f"copy{k}.png", np.asarray(Image.open(df.loc[k, "image"]))),
                     label=int(df.loc[k, "label"]), patient_id=f"q{k}")
    manifest = Manifest(df, ["label"], ["a", "b"], "binary")
    by_patient = assign_validation_split(manifest, 0.3, seed=0)
    assert audit_manifest(by_patient.df, ["label"]).leaks  # the old draw splits copies between train and val
    groups = split_groups(df, cache_dir=tmp_path / "cache")
    assert len(set(groups)) == 30 and groups[0] == groups[30]
    drawn = assign_validation_split(manifest, 0.3, seed=0, groups=groups)
    assert (drawn.df["split"] == "val").sum() > 0
    assert not audit_manifest(drawn.df, ["label"], cache_dir=tmp_path / "cache").leaks
