"""Audit core on small synthetic sets: duplicate groups, leaks, conflicts, id leaks, policy, cache, config, CLI."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfit.audit import audit_manifest, run_audit
from medfit.audit.duplicates import UnionFind, exact_pairs, near_pairs
from medfit.audit.fingerprint import fingerprint, perceptual_hash, unpack_phash
from medfit.config import AuditConfig, config_from_dict, updated
from medfit.data.manifest import Manifest
from medfit.errors import ConfigError, DataError
from medfit.run_folder import RunFolder


def smooth_image(seed: int, size: int = 96) -> np.ndarray:
    """A distinct, structured grey image (blurred noise), uint8."""
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 4)
    img = (img - img.min()) / (img.max() - img.min() + 1e-6)
    return (img * 255).astype(np.uint8)


def write_set(folder, n: int, splits=None, labels=None) -> pd.DataFrame:
    """n distinct PNGs with a manifest table (image, label, patient_id, site, split)."""
    rows = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(smooth_image(i)).save(path)
        rows.append({"image": str(path), "label": labels[i] if labels else i % 2, "patient_id": f"p{i}",
                     "site": "site0", "split": splits[i] if splits else ("train" if i < n * 0.7 else "test")})
    return pd.DataFrame(rows)


def add_row(df: pd.DataFrame, **row) -> pd.DataFrame:
    base = {"label": 0, "site": "site0", "split": "train"}
    base.update(row)
    base.setdefault("patient_id", base["image"])
    return pd.concat([df, pd.DataFrame([base])], ignore_index=True)


def test_union_find_and_exact_pairs():
    uf = UnionFind(6)
    uf.union(0, 3)
    uf.union(3, 5)
    uf.union(1, 2)
    assert uf.groups() == [[0, 3, 5], [1, 2]]
    assert exact_pairs(["a", "b", "a", "c", "a"]) == [(0, 2), (0, 4)]


def test_near_pairs_uses_the_closest_zoom_in_both_directions():
    rng = np.random.default_rng(0)
    hashes = rng.random((4, 5, 255)) > 0.5
    hashes[1, 3] = hashes[0, 0]  # image 0's reference equals image 1's fourth zoom
    hashes[1, 3, :10] ^= True  # ... up to 10 bits
    hashes[3, 0] = hashes[2, 2]  # image 3's reference equals image 2's third zoom (other direction)
    pairs = near_pairs(hashes, threshold=32)
    assert pairs == [(0, 1, 10), (2, 3, 0)]


def test_hash_is_stable_under_resize_jpeg_and_contrast_but_not_across_images(tmp_path):
    img = smooth_image(1, 200)
    ref = perceptual_hash(img.astype(np.float32))
    changed = cv2.resize(np.clip(img * 0.6 + 60, 0, 255).astype(np.uint8), (150, 170), interpolation=cv2.INTER_AREA)
    other = perceptual_hash(smooth_image(2, 200).astype(np.float32))
    copy = perceptual_hash(changed.astype(np.float32))
    assert ref.shape == (13, 255)
    assert (ref[0] != copy).sum(axis=1).min() <= 8
    assert (ref[0] != other).sum(axis=1).min() > 80
    rec = fingerprint(_save(tmp_path / "a.png", img))
    assert np.array_equal(unpack_phash(rec["phash"]), ref)
    assert (rec["height"], rec["width"], rec["channels"], rec["bit_depth"], rec["format"]) == (200, 200, 1, 8, "PNG")


def _save(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return str(path)


def test_cross_split_copy_is_a_leak_and_dedupe_drops_the_training_side(tmp_path):
    df = write_set(tmp_path, 12)
    train_src = df.loc[0, "image"]
    copy = cv2.resize(np.asarray(Image.open(train_src)), (80, 80), interpolation=cv2.INTER_AREA)
    df = add_row(df, image=_save(tmp_path / "copy.jpg", copy, quality=60), split="test", label=0)
    result = audit_manifest(df, ["label"], ["a", "b"])
    assert len(result.leaks) == 1 and result.leaks[0]["kind"] == "near"
    assert set(result.leaks[0]["images"]) == {train_src, str(tmp_path / "copy.jpg")}
    assert not result.ok and "span splits" in result.summary
    assert not result.removed

    deduped = audit_manifest(df, ["label"], ["a", "b"], cfg=AuditConfig(dedupe=True))
    assert deduped.ok
    assert [r["image"] for r in deduped.removed] == [train_src]
    assert train_src not in set(deduped.kept["image"]) and len(deduped.kept) == len(df) - 1
    assert "copy.jpg" in deduped.removed[0]["reason"]


def test_label_conflict_and_within_split_duplicates(tmp_path):
    df = write_set(tmp_path, 10, splits=["train"] * 10, labels=[0] * 10)
    src = np.asarray(Image.open(df.loc[1, "image"]))
    df = add_row(df, image=_save(tmp_path / "same.png", src), label=1)  # identical pixels, other label
    df = add_row(df, image=_save(tmp_path / "twin.png", np.asarray(Image.open(df.loc[2, "image"]))), label=0)
    result = audit_manifest(df, ["label"], ["a", "b"])
    assert len(result.conflicts) == 1 and result.conflicts[0]["kind"] == "exact"
    assert sorted(result.conflicts[0]["labels"]) == [0, 1]
    assert not result.leaks
    assert any("within one split" in w for w in result.warnings)  # the same-label twin only warns
    assert any("different labels" in e and "same.png" in e for e in result.errors)


def test_patient_and_dicom_uid_leaks(tmp_path):
    df = write_set(tmp_path, 8, splits=["train"] * 4 + ["test"] * 4)
    df.loc[0, "patient_id"] = df.loc[5, "patient_id"] = "P7"
    df["sop_uid"] = [f"1.2.{i}" for i in range(8)]
    df.loc[6, "sop_uid"] = df.loc[1, "sop_uid"]
    result = audit_manifest(df, ["label"])
    kinds = {(leak["kind"], leak["id"]) for leak in result.id_leaks}
    assert kinds == {("patient", "P7"), ("instance", "1.2.1")}
    assert len(result.errors) == 2
    deduped = audit_manifest(df, ["label"], cfg=AuditConfig(dedupe=True))
    assert deduped.ok and {r["image"] for r in deduped.removed} == {df.loc[0, "image"], df.loc[1, "image"]}


def test_run_audit_writes_json_and_refuses_with_the_files_named(tmp_path):
    df = write_set(tmp_path, 8, splits=["train"] * 5 + ["val"] * 3)
    df = add_row(df, image=_save(tmp_path / "dup.png", np.asarray(Image.open(df.loc[0, "image"]))), split="val")
    manifest = Manifest(df, ["label"], ["a", "b"], "binary")
    cfg = config_from_dict({"output_dir": str(tmp_path / "runs"), "audit": {"cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(DataError, match=r"img000\.png \(train\) = .*dup\.png \(val\).*audit\.json.*dedupe"):
        run_audit(cfg, manifest, RunFolder(tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert saved["ok"] is False and len(saved["duplicate_groups"]) == 1
    assert (tmp_path / "run" / "audit_findings.csv").is_file()

    cfg = updated(cfg, {"audit.dedupe": True})
    result = run_audit(cfg, manifest, RunFolder(tmp_path / "run"))
    assert len(result.manifest.df) == len(df) - 1 and result.manifest.class_names == ["a", "b"]
    assert json.loads((tmp_path / "run" / "audit.json").read_text())["removed"][0]["image"] == df.loc[0, "image"]

    cfg = updated(cfg, {"audit.enabled": False})
    assert run_audit(cfg, manifest, RunFolder(tmp_path / "run2")).manifest is manifest


def test_fingerprint_cache_is_reused_and_keyed_by_content(tmp_path, monkeypatch):
    from medfit.audit import run as audit_run

    df = write_set(tmp_path, 6)
    first = audit_manifest(df, ["label"], cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "fingerprints.json").is_file()

    def boom(refs):
        raise AssertionError(f"recomputed {refs}")

    monkeypatch.setattr(audit_run, "fingerprint_many", boom)
    monkeypatch.setattr(audit_run, "near_pairs", boom)
    again = audit_manifest(df, ["label"], cache_dir=tmp_path / "cache")  # fingerprints and pairs from the cache
    assert again.summary == first.summary
    _save(df.loc[0, "image"], smooth_image(99))  # new content at the same path: a miss
    with pytest.raises(AssertionError, match="img000"):
        audit_manifest(df, ["label"], cache_dir=tmp_path / "cache")


def test_missing_file_and_bad_manifest_are_data_errors(tmp_path):
    df = write_set(tmp_path, 3)
    with pytest.raises(DataError, match="lacks columns"):
        audit_manifest(df.drop(columns=["split"]), ["label"])
    df = add_row(df, image=str(tmp_path / "gone.png"))
    with pytest.raises(DataError, match="gone.png"):
        audit_manifest(df, ["label"], cache_dir=tmp_path / "cache")


def test_audit_config_section():
    cfg = config_from_dict({"audit": {"dedupe": True, "near_threshold": 20}})
    assert cfg.audit.dedupe and cfg.audit.near_threshold == 20 and cfg.audit.enabled
    with pytest.raises(ConfigError, match="audit.near_treshold: unknown key"):
        config_from_dict({"audit": {"near_treshold": 3}})


def test_cli_audit_refuses_a_leak_and_dedupes_on_request(tmp_path, capsys):
    import argparse

    from medfit.cli import VERBS
    from medfit.commands import audit as cli

    assert "audit" in VERBS
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)  # the verb's module directly: building the whole dispatcher imports every stage
    df = write_set(tmp_path, 10, splits=["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    df = add_row(df, image=_save(tmp_path / "leak.png", np.asarray(Image.open(df.loc[0, "image"]))), split="test")
    df.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "exp.yaml").write_text(
        f"name: audit-cli\noutput_dir: {tmp_path / 'runs'}\n"
        f"data: {{source: csv, root: {tmp_path / 'manifest.csv'}}}\naudit: {{cache_dir: {tmp_path / 'cache'}}}\n")
    with pytest.raises(DataError, match=r"^dataset audit: 1 duplicate group\(s\) span splits.*leak\.png \(test\)"):
        cli.run(parser.parse_args([str(tmp_path / "exp.yaml")]))
    assert cli.run(parser.parse_args([str(tmp_path / "exp.yaml"), "--dedupe"])) == 0
    out = capsys.readouterr().out
    assert "audit of 11 images" in out and f"removed: {df.loc[0, 'image']} (train)" in out
    assert (tmp_path / "runs" / "audit-cli" / "audit.json").is_file()


def test_multiclass_shortcut_names_the_class_and_the_feature(tmp_path):
    rows = []
    for i in range(60):
        label = i % 3
        img = smooth_image(i, 64 if label != 2 else 80)  # class 2 alone is stored at another size
        rows.append({"image": _save(tmp_path / f"{i}.png", img), "label": label, "patient_id": str(i),
                     "site": "site0", "split": "train"})
    result = audit_manifest(pd.DataFrame(rows), ["label"], ["a", "b", "c"], task="multiclass")
    assert len(result.shortcuts["warnings"]) == 1
    assert "class 'c'" in result.shortcuts["warnings"][0] and "image height (AUC 1.00)" in result.shortcuts["warnings"][0]
    assert result.shortcuts["classes"]["a"]["feature_auc"]["image height"] < 0.95
    assert "1 shortcut warning" in result.summary and result.ok


def test_multilabel_conflict_compares_every_label_column(tmp_path):
    df = write_set(tmp_path, 6, splits=["train"] * 6)
    df["effusion"] = [0, 1, 0, 1, 0, 1]
    df = df.rename(columns={"label": "opacity"})
    twin = _save(tmp_path / "twin.png", np.asarray(Image.open(df.loc[0, "image"])))
    df = add_row(df, image=twin, opacity=df.loc[0, "opacity"], effusion=1 - df.loc[0, "effusion"])
    df = df.drop(columns=["label"])
    result = audit_manifest(df, ["opacity", "effusion"], ["opacity", "effusion"], task="multilabel")
    assert len(result.conflicts) == 1 and set(result.conflicts[0]["images"]) == {df.loc[0, "image"], twin}
    assert set(result.shortcuts["profile"]) == {"opacity", "effusion"}


def test_regions_of_one_study_file_are_not_duplicates(tmp_path):
    """Study rows name one volume with different ROI labels (one per vertebra, even with different labels): no
    duplicate group, no conflict; a real copy of that file under another name still groups with it."""
    df = write_set(tmp_path, 6)
    first = df.iloc[0]
    study = pd.DataFrame([{**first.to_dict(), "roi_label": k, "label": k % 2} for k in (1, 2, 3)])
    rest = df.iloc[1:].assign(roi_label=1)
    result = audit_manifest(pd.concat([study, rest], ignore_index=True), ["label"], ["a", "b"])
    assert result.clusters == [] and result.ok
    copy = tmp_path / "copy_of_img000.png"
    copy.write_bytes(open(first["image"], "rb").read())
    extra = pd.DataFrame([{**first.to_dict(), "image": str(copy), "patient_id": first["patient_id"], "roi_label": 1}])
    result = audit_manifest(pd.concat([study, rest, extra], ignore_index=True), ["label"], ["a", "b"])
    assert len(result.clusters) == 1 and result.clusters[0]["kind"] == "exact"
