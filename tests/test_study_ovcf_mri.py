"""configs/ovcf-mri.yaml end to end on the real spine MRI: preprocess -> train (tiny BiomedCLIP-layout ViT, LoRA, a
clinical covariate) -> predict -> explain (Grad-CAM and rollout on the CLIP tower) -> export -> report, and
`medfit validate --train-sites A` on the CSV as shipped."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfit.cli import main
from medfit.config import load_config
from medfit.evaluate.metrics import binary_metrics_without_auc
from test_models_clip import make_tiny_biomedclip

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ovcf-mri.yaml"
CSV = CONFIG.with_suffix(".csv")
# cheap N4 for the test (the config's 50 x 4 iterations take ~3 s per slice); every other step as shipped
OPS = "[{name: n4, shrink: 8, iterations: 5, levels: 1}, {name: crop, margin: 0.1, square: true}, " \
      "{name: clip, low: 5.0, high: 95.0}, {name: minmax}]"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ovcf")
    make_tiny_biomedclip(tmp / "clip", trunk="test_vit")
    common = [f"output_dir={tmp / 'runs'}", f"preprocess.cache_dir={tmp / 'cache'}", f"preprocess.ops={OPS}",
              "data.image_size=32", f"model.clip.source=local-dir:{tmp / 'clip'}", "model.clip.image_size=48",
              "train.epochs=2", "train.batch_size=8", "train.logger=none", "train.progress_bar=false",
              "evaluate.bootstrap=50"]
    return tmp, common


def small_csv(tmp: Path) -> Path:
    """Seven exams of the shipped CSV (its sites and splits kept), two vertebral bodies each."""
    csv = pd.read_csv(CSV)
    for col in ("image", "mask"):
        csv[col] = [str((CSV.parent / p).resolve()) for p in csv[col]]
    keep = ["06_AKs6", "07_AKs7", "02_AKa3", "03_AKa4", "15_S01", "10_DzZ_T1", "11_DzZ_T2"]
    small = csv[csv["study_id"].isin(keep) & csv["roi_label"].isin([2, 3])]
    small.to_csv(tmp / "small.csv", index=False)
    return tmp / "small.csv"


def test_shipped_csv_has_two_sites_and_the_config_each_study_step():
    csv = pd.read_csv(CSV)
    assert csv.groupby("patient_id")["site"].nunique().max() == 1 and set(csv["site"]) == {"A", "B"}
    assert csv.groupby("patient_id")["split"].nunique().max() == 1
    assert set(csv.loc[csv["site"] == "B", "split"]) == {"test"} and set(csv.loc[csv["split"] == "val", "sequence"]) == {
        "t1", "t2"}
    assert (csv["level"] == csv["roi_label"]).all()
    cfg = load_config(CONFIG)
    assert [o["name"] for o in cfg.preprocess.ops] == ["n4", "crop", "clip", "minmax"]
    assert cfg.preprocess.ops[2]["low"] == 5.0 and cfg.preprocess.ops[2]["high"] == 95.0
    assert (cfg.model.kind, cfg.model.finetune, cfg.volume.key_slice, cfg.volume.neighbours) == (
        "open_clip", "lora", "mask", 2)
    assert cfg.volume.augmented_prediction and cfg.volume.combine == "mean_prob" and cfg.covariates.categorical == [
        "level"]
    text = CONFIG.read_text()
    for step in ("N4", "ROI crop", "5th-95th", "min-max", "LoRA", "key slice +- 2", "hospitals", "n4_3d"):
        assert step in text, step


def test_ovcf_mri_end_to_end(setup, capsys):
    tmp, common = setup
    args = [f"data.root={small_csv(tmp)}", "volume.neighbours=1", *common]
    assert main(["preprocess", str(CONFIG), "--set", *args]) == 0
    cached = sorted((tmp / "cache").rglob("*.npz"))
    assert len(cached) == 14 * 3  # 14 vertebrae x (key slice +- 1)
    for path in cached[:6]:
        with np.load(path) as z:
            img = z[z.files[0]]
        # the 5-95 % clip then min-max: ~5 % of the crop at each end (measured 2.4-4.7 % after resizing to 32 px)
        assert img.shape == (1, 32, 32) and img.min() == 0 and img.max() == 1
        assert 0.015 < (img <= 0.02).mean() < 0.08 and 0.015 < (img >= 0.98).mean() < 0.08
    assert main(["train", str(CONFIG), "--set", *args]) == 0
    assert len(sorted((tmp / "cache").rglob("*.npz"))) == len(cached)  # training read every slice from the cache
    run = tmp / "runs" / "ovcf-mri"
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 10 * 3 and set(pred["offset"]) == {-1, 0, 1} and set(pred["split"]) == {"val", "test"}
    csv = pd.read_csv(tmp / "small.csv")
    key = pred[pred["offset"] == 0].merge(csv, on=["image", "slice_index"], how="left", indicator=True)
    assert (key["_merge"] == "both").all()  # key slices from the masks = the CSV's largest-area slices
    # study level: the mean of each vertebra's three slice probabilities, scored at the val studies' threshold
    metrics = json.loads((run / "metrics.json").read_text())
    level = metrics["studies"]
    studies = pd.read_csv(run / "study_predictions.csv")
    means = pred.groupby("study_id")["prob"].mean()
    np.testing.assert_allclose(studies.set_index("study_id")["combined"], means[studies["study_id"]], atol=1e-6)
    thr = level["threshold"]["value"]
    assert level["threshold"]["chosen_on"] == "val studies" and 0 <= thr <= 1
    test = studies[studies["split"] == "test"]
    hand = binary_metrics_without_auc(test["sequence"].to_numpy(), test["combined"].to_numpy(), thr)
    for k in ("accuracy", "sensitivity", "specificity", "f1"):
        assert level["splits"]["test"][k] == pytest.approx(hand[k], abs=1e-6), k
    assert level["splits"]["test"]["n"] == 6 and level["splits"]["val"]["n"] == 4
    sites = {(r["split"], r["site"]): r for r in level["sites"]}
    assert sites[("test", "A")]["role"] == "internal" and sites[("test", "A")]["n"] == 2
    assert sites[("test", "B")]["role"] == "external" and sites[("test", "B")]["n"] == 4
    enc = json.loads((run / "covariates.json").read_text())
    assert enc["features"] == ["level=2", "level=3"]
    # predict reproduces the run's probabilities (slice, mask, ROI label and covariate honoured)
    out = tmp / "again.csv"
    assert main(["predict", str(run), "--split", "test", "--out", str(out)]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["prob"], pred.query("split == 'test'")["prob"], atol=1e-5)
    # explain: Grad-CAM and attention rollout on the LoRA CLIP tower, each case at its own probability
    probs = {(r.study_id, r.offset): r.prob for r in pred.itertuples()}
    for method, per_group in (("rollout", 1), ("gradcam", 20)):  # gradcam: every test slice (S01's two bodies share
        assert main(["explain", str(run), "--gallery", "--per-group", str(per_group), "--method", method]) == 0
        gallery = json.loads((run / "plots" / "saliency" / "gallery.json").read_text())  # slices 26-28)
        assert gallery["method"] == method and gallery["threshold"] == pytest.approx(metrics["threshold"]["value"])
        assert gallery["cases"] and all((run / c["png"]).stat().st_size > 1000 for c in gallery["cases"])
        for case in gallery["cases"]:  # each case cropped on its own vertebra, with its own covariate
            # (training holds study slices as float16, explain reads them as float32: 1e-5 apart)
            assert case["prob"] == pytest.approx(probs[(case["study_id"], case["offset"])], abs=1e-4), case
    assert len(gallery["cases"]) == 18
    # ONNX with two inputs (image, covariates); LoRA folded in inside the covariate fusion
    assert main(["export", str(run)]) == 0
    info = json.loads((run / "model.json").read_text())
    assert info["covariates"]["input"] == [None, 2] and info["max_abs_difference"] <= 1e-4
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    for text in ("Study level (key slice ± 1, mean_prob)", "chosen on the validation studies", "external",
                 "Clinical covariates", "one-hot: 2 (", "true positives"):
        assert text in html, text
    # the explanation check: the test key slices' body masks, moved into the input frame, against random maps
    assert main(["explain", str(run), "--quality", "--quality-images", "4"]) == 0
    loc = json.loads((run / "plots" / "saliency" / "quality.json").read_text())["localisation"]
    assert loc["n"] == 4 and 0 <= loc["pointing_hit_rate"] <= 1 and 0 <= loc["mass_in_mask"] <= 1
    # i.i.d. random maps: both baselines are the body's share of the input (about 0.3-0.5 after the 10 % margin crop)
    assert 0.25 < loc["mask_area_share"] < 0.6
    assert abs(loc["pointing_hit_rate_random"] - loc["mask_area_share"]) < 0.06  # 800 random maps: SD 0.018
    assert abs(loc["mass_in_mask_random"] - loc["mask_area_share"]) < 0.02
    html = (run / "report.html").read_text()
    assert "pointing game" in html and "share of saliency inside the mask" in html and "randomisation check" in html


def test_validate_by_site_on_the_shipped_csv(setup):
    tmp, common = setup
    # the shipped CSV as is (85 vertebrae); the CSV's largest-area slices as key slices, no neighbours: quick
    args = [*common, "volume.neighbours=0", "volume.key_slice=given", "volume.augmented_prediction=false",
            "train.epochs=1", "name=ovcf-val"]
    assert main(["validate", str(CONFIG), "--train-sites", "A", "--set", *args]) == 0
    res = json.loads((tmp / "runs" / "ovcf-val-sites" / "sites.json").read_text())
    csv = pd.read_csv(CSV)
    rows = {(r["split"], r["site"]): r for r in res["rows"]}
    assert set(rows) == {("val", "A"), ("test", "A"), ("external", "B")}
    assert rows[("external", "B")]["role"] == "external" and rows[("test", "A")]["role"] == "internal"
    assert rows[("external", "B")]["n"] == (csv["site"] == "B").sum() == 34
    assert rows[("test", "A")]["n"] == ((csv["site"] == "A") & (csv["split"] == "test")).sum() == 7
    assert rows[("external", "B")]["auc"] is not None and rows[("test", "A")]["auc"] is None  # S01 is T2 only
    assert res["threshold"]["chosen_on"] == "val"
    html = (tmp / "runs" / "ovcf-val-sites" / "report.html").read_text()
    assert "external validation by site" in html
