"""configs/cspine-ct.yaml (ResNet-50, SGD, attention MIL) and configs/cspine-ct-vit.yaml (ViT, AdamW, ordered GRU)
end to end on a stand-in built from the real GE head CT series (tests/cspine_standin.py): preprocess -> train ->
predict -> explain (a map per sampled slice) -> report side by side. Small sizes: 32 px, 6 sagittal slices 3 apart
at 2 mm, one epoch."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cspine_standin import LEVELS, build_standin
from medfit.cli import main
from medfit.config import load_config
from medfit.data.manifest import build_manifest
from medfit.io import read_volume
from medfit.models import load_network
from medfit.preprocess.crop import resize_square
from medfit.preprocess.intensity import apply_window
from medfit.preprocess.reformat import central_slice_indices, reformat
from medfit.run_folder import RunFolder
from medfit.train.inputs import dataset_for

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CNN, VIT = CONFIGS / "cspine-ct.yaml", CONFIGS / "cspine-ct-vit.yaml"
SERIES = "ct-head-dicom-series-ge/series"


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cspine")
    build_standin(shared_data / SERIES, tmp / "studies").to_csv(tmp / "cspine.csv", index=False)
    common = [f"data.root={tmp / 'cspine.csv'}", f"output_dir={tmp / 'runs'}", f"preprocess.cache_dir={tmp / 'cache'}",
              "preprocess.ops=[{name: window, preset: bone}, {name: reformat, plane: sagittal, spacing: 2.0}]",
              "data.image_size=32", "volume.slices=6", "volume.stride=3", "model.pretrained=''", "train.epochs=1",
              "train.logger=none", "train.progress_bar=false", "evaluate.bootstrap=30",
              "audit.near_duplicates=false"]  # the stand-in studies are crops of one series: near-copies by design
    vit = [*common, "model.name=vit_tiny_patch16_224", "model.kwargs={img_size: 32, patch_size: 8}",
           "volume.mil_hidden=32"]
    return tmp, common, vit


def test_configs_say_which_study_step_each_key_reproduces():
    cnn, vit = load_config(CNN), load_config(VIT)
    assert cnn.data.label_columns == [*LEVELS, "any"] and cnn.data.task == "multilabel"
    assert [o["name"] for o in cnn.preprocess.ops] == ["window", "reformat"] and cnn.preprocess.ops[1]["plane"] == \
        "sagittal"
    assert (cnn.volume.mode, cnn.volume.stride, cnn.volume.aggregator) == ("slice_set", 2, "attention")
    assert (cnn.model.name, cnn.train.optim.optimizer, cnn.train.optim.scheduler) == ("resnet50", "sgd", "cosine")
    assert cnn.train.optim.warmup_epochs > 0
    assert (vit.model.name, vit.train.optim.optimizer, vit.volume.aggregator) == ("vit_base_patch16_224", "adamw",
                                                                                  "gru")
    # the two arms share the data, preprocessing and slice sampling: they predict the same studies
    assert cnn.data == vit.data and cnn.preprocess == vit.preprocess and cnn.evaluate == vit.evaluate
    assert dataclasses.replace(cnn.volume, aggregator="gru") == vit.volume
    for text in ("sagittal", "N slices", "from the middle", "C1-C7", "ResNet-50", "SGD", "warmup", "stand-in"):
        assert text in CNN.read_text(), text


def test_model_inputs_are_the_central_sagittal_slices(setup, shared_data):
    tmp, common, _ = setup
    cfg = load_config(CNN, common)
    manifest = build_manifest(cfg)
    test = manifest.split("test")
    images = dataset_for(test, cfg, progress=False).images.float().numpy()
    assert images.shape == (3, 6, 1, 32, 32)
    series = test.df["image"].iloc[0]
    vol = read_volume(series)
    sag = reformat(vol.__class__(apply_window(vol.array, 400.0, 1800.0), vol.spacing, vol.origin, vol.direction,
                                 dict(vol.meta)), "sagittal", 2.0).array
    assert sag.shape[0] == 32  # 128 px x 0.49 mm across, at 2 mm (the axial files have 16-24 slices)
    wanted = central_slice_indices(sag.shape[0], 6, 3)
    assert wanted == [7, 10, 13, 16, 19, 22]
    every = np.stack([resize_square(s.astype(np.float32), 32) for s in sag])
    for j, index in enumerate(wanted):  # each model slice is closest to the sagittal slice it should be
        errors = np.abs(every - images[0, j, 0]).mean(axis=(1, 2))
        assert int(errors.argmin()) == index and errors[index] < 2e-3, (j, index, errors.argmin())


def test_cspine_cnn_and_vit_end_to_end(setup):
    tmp, common, vit = setup
    assert main(["preprocess", str(CNN), "--set", *common]) == 0
    assert len(list((tmp / "cache").rglob("*.npz"))) == 12 * 6  # 12 studies x 6 sagittal slices
    assert main(["train", str(CNN), "--set", *common]) == 0
    assert main(["train", str(VIT), "--set", *vit]) == 0
    cnn, vit_run = RunFolder(tmp / "runs" / "cspine-ct"), RunFolder(tmp / "runs" / "cspine-ct-vit")
    truth = pd.read_csv(tmp / "cspine.csv").set_index("image")
    for run in (cnn, vit_run):
        pred = run.read_predictions()
        assert len(pred) == 6 and set(pred["split"]) == {"val", "test"}  # one row per study
        assert [c for c in pred if c.startswith("prob_")] == [f"prob_{c}" for c in [*LEVELS, "any"]]
        metrics = run.read_metrics()
        assert set(metrics["per_label"]) == {*LEVELS, "any"}
        labels = metrics["per_label"]
        test = pred[pred["split"] == "test"]
        for c in ("C1", "any"):  # per-label AUC on the 3 test studies, by hand
            assert labels[c]["test"]["auc"] == pytest.approx(roc_auc_score(test[c], test[f"prob_{c}"]), abs=1e-6)
        assert (pred.set_index("image")["any"] == truth.loc[pred["image"], "any"]).all()
        anyj = run.read_json("multilabel_any")["splits"]["test"]
        p_any = test[[f"prob_{c}" for c in [*LEVELS, "any"]]].max(axis=1)  # the derived "any": max over the heads
        assert anyj["any"]["auc"] == pytest.approx(roc_auc_score(test[[*LEVELS, "any"]].max(axis=1), p_any))
    # ordered vs unordered: the GRU's output depends on the slice order, the attention MIL's does not
    x = torch.from_numpy(dataset_for(build_manifest(load_config(CNN, common)).split("test"), load_config(CNN, common),
                                     progress=False).images.float().numpy())
    with torch.no_grad():
        mil, gru = load_network(cnn), load_network(vit_run)
        assert torch.allclose(mil(x), mil(x.flip(1)), atol=1e-5)
        assert (gru(x) - gru(x.flip(1))).abs().max() > 1e-4
    # predict reproduces the run's probabilities
    out = tmp / "again.csv"
    assert main(["predict", str(cnn.path), "--split", "test", "--out", str(out)]) == 0
    again, pred = pd.read_csv(out), cnn.read_predictions().query("split == 'test'")
    np.testing.assert_allclose(again["prob_any"], pred["prob_any"], atol=1e-5)
    # explain: Grad-CAM on every sampled slice of the two studies most likely "any" positive
    for run in (cnn, vit_run):
        assert main(["explain", str(run.path), "--slices", "2"]) == 0
        rec = run.read_json("slice_saliency")["studies"]
        top = run.read_predictions().query("split == 'test'").nlargest(2, "prob_any")
        assert [r["image"] for r in rec] == list(top["image"]) and all(r["slices"] == 6 for r in rec)
        np.testing.assert_allclose([r["prob"] for r in rec], top["prob_any"], atol=1e-4)
        if run is cnn:
            assert all(abs(sum(r["attention"]) - 1) < 1e-5 for r in rec)  # the MIL's slice weights
        else:
            assert all(r["attention"] is None for r in rec)
        assert all((run.path / r["png"]).stat().st_size > 5000 for r in rec)
    # ResNet-50 vs ViT side by side
    assert main(["report", str(cnn.path), str(vit_run.path), "--out", str(tmp / "compare.html")]) == 0
    html = (tmp / "compare.html").read_text()
    for run in (cnn, vit_run):
        assert run.path.name in html and f"{run.read_metrics()['splits']['test']['auc']:.3f}" in html
    assert "resnet50" in html and "vit_tiny_patch16_224" in html
