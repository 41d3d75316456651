"""Study datasets and models: input modes on real 3D MedMNIST volumes, MIL pooling, MONAI 3D, augmented prediction."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from medfit.commands.pipeline import finish_run, train_run
from medfit.config import ExperimentConfig, updated
from medfit.data.manifest import Manifest, manifest_from_medmnist
from medfit.data.studies import study_manifest
from medfit.errors import ConfigError, DataError
from medfit.evaluate.augmented import (augmented_comparison, combine_probabilities, multilabel_metrics,
                                       study_predictions)
from medfit.models import build_network
from medfit.models.volume_models import GatedAttentionMIL, build_3d
from medfit.train.inputs import dataset_for


def _adrenal(shared_data, n=4) -> tuple[Manifest, np.ndarray]:
    path = shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"
    m = manifest_from_medmnist(path)
    with np.load(path) as z:
        vols = z["train_images"][:n]
    return Manifest(m.df.head(n).copy(), m.label_columns, m.class_names, m.task), vols


def _cfg(mode: str, k: int = 2, **more) -> ExperimentConfig:
    kind = {"model.kind": "monai3d", "model.name": "resnet10"} if mode == "3d" else {}
    return updated(ExperimentConfig(), {"data.image_size": 28, "volume.mode": mode, "volume.neighbours": k,
                                        "volume.key_slice": "centre", **kind, **more})


def test_input_modes_hold_the_right_voxels(shared_data):
    m, vols = _adrenal(shared_data)
    v = vols.astype(np.float32) / 255
    ds = dataset_for(study_manifest(m, _cfg("2.5d")), _cfg("2.5d"), progress=False)
    assert ds.images.shape == (4, 5, 28, 28)
    np.testing.assert_allclose(ds[1][0].numpy(), v[1, 12:17], atol=1e-3)  # centre 14 +- 2 as channels
    ds = dataset_for(m, _cfg("3d"), progress=False)
    assert ds.images.shape == (4, 1, 28, 28, 28)
    np.testing.assert_allclose(ds[2][0][0].numpy(), v[2], atol=1e-3)
    ds = dataset_for(m, _cfg("slice_set"), progress=False)
    assert ds.images.shape == (4, 28, 1, 28, 28)
    np.testing.assert_allclose(ds[0][0][:, 0].numpy(), v[0], atol=1e-3)
    sm = study_manifest(m, _cfg("slice", 1))  # slice mode with neighbours: 3 rows per study
    assert len(sm) == 12 and sm.df["offset"].tolist()[:3] == [-1, 0, 1]
    assert sm.df.groupby("study_id")["slice_index"].apply(list).iloc[0] == [13, 14, 15]
    ds = dataset_for(sm, _cfg("slice", 1), progress=False)
    np.testing.assert_allclose(ds[5][0][0].numpy(), v[1, 15], atol=1e-3)
    assert ds[5][1].item() == m.labels()[1]


def test_mil_attention_is_a_distribution_and_pooling_ignores_slice_order():
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU())
    mil = GatedAttentionMIL(enc, 16, 3, hidden=8).eval()
    x = torch.rand(2, 6, 1, 8, 8)
    out = mil(x)
    assert out.shape == (2, 3)
    assert torch.allclose(mil.last_attention.sum(1), torch.ones(2), atol=1e-6)
    perm = torch.randperm(6)
    assert torch.allclose(mil(x[:, perm]), out, atol=1e-5)
    # A positive instance dominates: one slice changed changes the bag output.
    y = x.clone(); y[0, 3] = 1.0
    assert not torch.allclose(mil(y)[0], out[0])


def test_volume_models_by_mode():
    cfg = _cfg("2.5d", 1, **{"model.name": "test_resnet"})
    assert build_network(cfg, 2)(torch.rand(2, 3, 28, 28)).shape == (2, 2)
    cfg = updated(cfg, {"volume.mode": "slice_set"})
    net = build_network(cfg, 1)
    assert isinstance(net, GatedAttentionMIL) and net(torch.rand(2, 5, 1, 28, 28)).shape == (2, 1)
    net = build_3d("resnet10", 1, 1, {"conv1_t_stride": 1})
    assert net(torch.rand(2, 1, 16, 16, 16)).shape == (2, 1)
    with pytest.raises(ConfigError, match="model.name 'vgg3d'"):
        build_3d("vgg3d", 1, 1)


def test_combine_rules():
    p = np.array([0.2, 0.5, 0.9])
    assert combine_probabilities(p, "mean_prob") == pytest.approx(0.5333333)
    assert combine_probabilities(p, "max") == 0.9
    logit = np.log(p / (1 - p)).mean()
    assert combine_probabilities(p, "mean_logit") == pytest.approx(1 / (1 + np.exp(-logit)))
    with pytest.raises(DataError, match="combine"):
        combine_probabilities(p, "median")


def test_augmented_table_pairs_single_and_combined_on_the_same_studies():
    rng = np.random.default_rng(0)
    rows = []
    for s in range(60):
        y = s % 2
        for off in (-2, -1, 0, 1, 2):  # noisy slices around a study-level signal: averaging helps
            rows.append({"study_id": f"s{s}", "offset": off, "split": "test", "label": y,
                         "prob": float(np.clip(0.5 + 0.15 * (2 * y - 1) + rng.normal(0, 0.3), 0.001, 0.999))})
    studies = study_predictions(pd.DataFrame(rows), "label", "mean_prob")
    assert len(studies) == 60 and (studies["slices"] == 5).all()
    key = pd.DataFrame(rows).query("offset == 0")["prob"].to_numpy()
    np.testing.assert_allclose(studies["single"], key)
    res = augmented_comparison(studies, "label")
    assert res["auc_combined"] > res["auc_single"] and 0 <= res["p_value"] < 0.05
    with pytest.raises(DataError, match="offset"):
        study_predictions(pd.DataFrame(rows).drop(columns="offset"), "label")


def test_multilabel_per_label_macro_and_any():
    y = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]])
    p = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.1], [0.1, 0.8, 0.6], [0.3, 0.2, 0.95]])
    m = multilabel_metrics(y, p, ["C1", "C2", "C3"])
    assert m["per_label"]["C1"]["auc"] == 1.0 and m["per_label"]["C3"]["auc"] == pytest.approx(2 / 3)
    assert m["macro"]["auc"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert m["any"]["positives"] == 2 and m["any"]["auc"] == pytest.approx(0.5)  # max probs .9 .3 .8 .95
    with pytest.raises(DataError, match="shape"):
        multilabel_metrics(y, p[:, :2], ["C1", "C2", "C3"])


def _train_cfg(tmp_path, mode: str, **volume) -> ExperimentConfig:
    return updated(ExperimentConfig(), {
        "name": f"adrenal-{mode}", "output_dir": str(tmp_path), "data.source": "medmnist",
        "data.root": "adrenalmnist3d/adrenalmnist3d.npz", "data.task": "binary", "data.image_size": 28,
        "data.limit_per_split": 24, "model.name": "test_resnet", "train.epochs": 1, "train.batch_size": 16,
        "train.logger": "none", "train.progress_bar": False, "evaluate.bootstrap": 20, "volume.mode": mode,
        **{f"volume.{k}": v for k, v in volume.items()}})


def train(cfg, data_dir):
    """`medfit train` as the verb composes it; the run folder's path."""
    return finish_run(train_run(cfg, data_dir)).path


def test_train_slice_set_and_augmented_slice_runs(shared_data, tmp_path):
    run = train(_train_cfg(tmp_path, "slice_set", slices=8), data_dir=str(shared_data))
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["splits"]["test"]["auc"] <= 1.0
    assert len(pd.read_csv(run / "predictions.csv")) == 48  # val + test studies, one row each

    run = train(_train_cfg(tmp_path, "slice", key_slice="centre", neighbours=1, augmented_prediction=True),
                data_dir=str(shared_data))
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 3 * 48 and set(pred["offset"]) == {-1, 0, 1}
    aug = json.loads((run / "augmented.json").read_text())
    test = aug["splits"]["test"]
    assert test["studies"] == 24 and 0 <= test["p_value"] <= 1 and 0 <= test["auc_combined"] <= 1
    assert "DeLong p" in (run / "augmented.md").read_text()


def test_patient_any_is_positive_when_any_label_on_any_row_is():
    from medfit.evaluate.augmented import patient_any

    pred = pd.DataFrame({"patient_id": ["a", "a", "b", "b", "c"], "split": "test",
                         "C1": [0, 0, 0, 0, 1], "C2": [0, 1, 0, 0, 0],
                         "prob_C1": [0.1, 0.2, 0.3, 0.1, 0.9], "prob_C2": [0.4, 0.8, 0.2, 0.6, 0.1]})
    out = patient_any(pred, ["C1", "C2"]).set_index("patient_id")
    assert out["y_any"].to_dict() == {"a": 1, "b": 0, "c": 1}
    assert out["p_any"].to_dict() == {"a": 0.8, "b": 0.6, "c": 0.9}


def test_multilabel_3d_study_run_writes_per_label_and_any(shared_data, tmp_path):
    """Two real labels per AdrenalMNIST3D volume: adrenal mass, and a gland larger than the median (from the voxels)."""
    path = shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"
    rows = []
    with np.load(path) as z:
        for split, n in (("train", 48), ("val", 24), ("test", 24)):
            vols, labels = z[f"{split}_images"][:n], z[f"{split}_labels"][:n, 0]
            size = (vols > 0).reshape(n, -1).sum(1)
            for i in range(n):
                rows.append({"image": f"{path}::{split}_images::{i}", "mass": int(labels[i]),
                             "large": int(size[i] > np.median(size)), "patient_id": f"{split}{i}", "split": split})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    cfg = updated(_train_cfg(tmp_path, "2.5d", neighbours=1), {
        "data.source": "csv", "data.root": str(tmp_path / "m.csv"), "data.task": "multilabel",
        "data.limit_per_split": 0, "data.label_columns": ["mass", "large"]})
    run = train(cfg, data_dir=str(shared_data))
    pred = pd.read_csv(run / "predictions.csv")
    assert {"prob_mass", "prob_large"} <= set(pred.columns) and len(pred) == 48
    out = json.loads((run / "multilabel_any.json").read_text())
    res = out["splits"]["test"]
    assert out["group"] == "study_id"  # 2.5d rows are studies (one per volume)
    assert set(res["per_label"]) == {"mass", "large"} and res["macro"]["auc"] is not None
    any_ = res["any_study_id"]
    assert any_["threshold"]["chosen_on"] == "val" and 0 <= any_["threshold"]["value"] <= 1  # not a fixed 0.5
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["classes"]["cooccurrence"]["label_names"] == ["mass", "large"]
    html = (run / "report.html").read_text()
    assert "Per label (one vs the rest)" in html and "Label co-occurrence" in html and '"Any" label' in html
    assert any_["n"] == 24 and any_["positives"] == int(((pred["mass"] + pred["large"]) > 0)[pred["split"] == "test"].sum())
