"""Validation and k-fold draws keep duplicate groups whole: on real chest X-rays with near copies planted in the
training pool under other patient ids, medfit never reports a leak that its own draw created."""
import numpy as np
import pandas as pd
from PIL import Image

from medfit.audit import audit_manifest
from medfit.commands.pipeline import evaluate_all, prepare_run
from medfit.config import config_from_dict
from medfit.data.manifest import build_manifest
from medfit.evaluate.protocols import cross_validate

CXR = "chest-xray-pneumonia-224"
COPIES = 12


def near_copy(src, dst) -> None:
    """A resized, re-encoded copy (what a data set gathered from several sources holds)."""
    img = Image.open(src).convert("L")
    img.resize((200, 200), Image.BILINEAR).save(dst, quality=70)


def xray_tree(shared_data, tmp_path):
    """train/{NORMAL,PNEUMONIA} with 24 + 24 real X-rays (the first 12 of NORMAL copied once more as copyK.jpeg, a
    patient of its own) and test/ with 6 + 6."""
    root = tmp_path / "xr"
    for split, n in (("train", 24), ("test", 6)):
        for label in ("NORMAL", "PNEUMONIA"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((shared_data / CXR / split / label).glob("*.jpeg"))[:n]:
                (root / split / label / f.name).symlink_to(f)
    normal = sorted((root / "train" / "NORMAL").glob("*.jpeg"))
    for k, f in enumerate(normal[:COPIES]):
        near_copy(f, root / "train" / "NORMAL" / f"copy{k}.jpeg")
    return root


def tree_config(root, tmp_path, **data):
    return config_from_dict({
        "name": "draw", "output_dir": str(tmp_path / "runs"),
        "data": {"root": str(root), "image_size": 28, "val_fraction": 0.3, "patient_scope": "split", **data},
        "audit": {"cache_dir": str(tmp_path / "cache")}, "evaluate": {"bootstrap": 20},
    })


def test_validation_draw_keeps_planted_copies_together(shared_data, tmp_path):
    root = xray_tree(shared_data, tmp_path)
    cfg = tree_config(root, tmp_path)
    # drawn by patient alone (the old draw), copies land on both sides: leaks the user cannot fix
    by_patient = build_manifest(cfg)
    old = audit_manifest(by_patient.df, ["label"], cache_dir=tmp_path / "cache")
    assert len(old.leaks) >= 1 and {s for c in old.leaks for s in c["splits"]} == {"train", "val"}
    run, manifest, _ = prepare_run(cfg)  # the audit would raise AuditError on a leak
    audit = run.read_json("audit")
    assert audit["ok"] and "0 span splits" in audit["summary"]
    groups = [g for g in audit["duplicate_groups"] if len(g["images"]) == 2]
    assert len(groups) == COPIES and all(len(set(g["splits"])) == 1 for g in groups)
    assert {g["splits"][0] for g in groups} == {"train", "val"}  # groups are drawn, not all kept in train
    assert (manifest.df["split"] == "val").sum() >= 10
    assert any(f"{COPIES} group(s) of duplicate images within one split" in w for w in audit["warnings"])


def test_kfold_keeps_planted_copies_in_one_fold(shared_data, tmp_path):
    root = xray_tree(shared_data, tmp_path)
    cfg = tree_config(root, tmp_path, val_fraction=0.2)
    folds = []

    def audited_fit(fold_cfg):
        """Every fold is prepared (and so audited) like a training run; predictions are a fixed guess."""
        run, manifest, _ = prepare_run(fold_cfg)
        folds.append(run.read_json("audit"))
        rest = manifest.df[manifest.df["split"] != "train"]
        prob = np.random.default_rng(len(folds)).random(len(rest)) * 0.5 + 0.5 * rest["label"].to_numpy()
        run.write_predictions(rest[["image", "patient_id", "site", "split", "label"]].assign(prob=prob))
        evaluate_all(run)
        return run

    result = cross_validate(cfg, 3, None, audited_fit)
    assert len(folds) == 3 and all(a["ok"] and "0 span splits" in a["summary"] for a in folds)
    oof = pd.read_csv(result["folder"] + "/oof_predictions.csv")
    fold_of = dict(zip(oof["image"], oof["fold"]))
    for k in range(COPIES):
        copy = str(root / "train" / "NORMAL" / f"copy{k}.jpeg")
        source = sorted(str(p) for p in (root / "train" / "NORMAL").glob("*.jpeg") if "copy" not in p.name)[k]
        assert fold_of[copy] == fold_of[source]
