"""The shipped OVCF config end to end on a few real spine MRI volumes: mask key slices +- k, LoRA ViT, augmented table."""
import json
from pathlib import Path

import pandas as pd

from medfit.cli import main
from medfit.config import load_config
from medfit.run_folder import RunFolder

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "spine-ovcf.yaml"


def test_spine_ovcf_config_runs_end_to_end(shared_data, tmp_path):
    from medfit.commands.pipeline import finish_run, train_run
    from medfit.explain.gallery import key_slice_saliency

    csv = pd.read_csv(CONFIG.parent / "spine-ovcf.csv")
    csv["image"] = [str((CONFIG.parent / p).resolve()) for p in csv["image"]]
    csv["mask"] = [str((CONFIG.parent / p).resolve()) for p in csv["mask"]]
    # Six exams (t1 + t2 in each split), two vertebral bodies each: 12 studies x 3 slices keep it quick.
    keep = {"06_AKs6": "train", "16_S02": "train", "02_AKa3": "val", "03_AKa4": "val", "11_DzZ_T2": "test", "10_DzZ_T1": "test"}
    small = csv[csv["study_id"].isin(keep) & csv["roi_label"].isin([2, 3])]
    assert set(small["sequence"][small["split"] == "train"]) == {"t1", "t2"}
    (tmp_path / "spine.csv").write_text(small.to_csv(index=False))
    overrides = [f"data.root={tmp_path / 'spine.csv'}", f"output_dir={tmp_path}", "volume.neighbours=1",
                 "train.epochs=1", "train.logger=none", "train.progress_bar=false", "evaluate.bootstrap=20"]
    cfg = load_config(CONFIG, overrides)
    assert cfg.model.finetune == "lora" and cfg.preprocess.recipe == "mri-ovcf" and cfg.volume.key_slice == "mask"
    # `medfit preprocess` fills the cache ahead of training: training then finds every slice there
    assert main(["preprocess", str(CONFIG), "--set", *overrides]) == 0
    entries = sorted(p.name for p in (tmp_path / ".cache").rglob("*.npz"))
    assert len(entries) == 3 * 12
    run = finish_run(train_run(cfg)).path
    assert sorted(p.name for p in (tmp_path / ".cache").rglob("*.npz")) == entries
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 3 * 8 and set(pred["offset"]) == {-1, 0, 1}
    # key slices came from the masks and match the CSV's largest-area slice
    key = pred[pred["offset"] == 0].merge(small, on=["image", "slice_index"], how="left", indicator=True)
    assert (key["_merge"] == "both").all()
    aug = json.loads((run / "augmented.json").read_text())
    assert aug["splits"]["test"]["studies"] == 4 and aug["rule"] == "mean_prob"
    assert 0 <= aug["splits"]["test"]["p_value"] <= 1
    pngs = key_slice_saliency(RunFolder(run), "test", cases=2)
    assert len(pngs) == 2 and all(p.stat().st_size > 1000 for p in pngs)
    # the explanation check: the test key slices' body masks, moved into the input frame, against random maps
    assert main(["explain", str(run), "--quality", "--quality-images", "4"]) == 0
    quality = json.loads((run / "plots" / "saliency" / "quality.json").read_text())
    loc = quality["localisation"]
    assert loc["n"] == 4 and 0 <= loc["pointing_hit_rate"] <= 1 and 0 <= loc["mass_in_mask"] <= 1
    # i.i.d. random maps: both baselines are the body's share of the input (about 0.3-0.5 after the 10 % margin crop)
    assert 0.25 < loc["mask_area_share"] < 0.6
    assert abs(loc["pointing_hit_rate_random"] - loc["mask_area_share"]) < 0.06  # 800 random maps: SD 0.018
    assert abs(loc["mass_in_mask_random"] - loc["mask_area_share"]) < 0.02
    warning = quality["target_layer"]["warning"]  # the ViT's 8 px patches at 48 px
    assert "6x6 saliency map" in warning and "patch size" in warning
    html = (run / "report.html").read_text()
    assert "pointing game" in html and "share of saliency inside the mask" in html and "randomisation check" in html
