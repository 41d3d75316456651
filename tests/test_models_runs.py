"""Fine-tuning methods through real training runs on PneumoniaMNIST: LoRA run reload, ONNX export and predict."""
import json

import pandas as pd
import pytest
import torch

from medfit.cli import main
from medfit.config import config_from_dict
from medfit.commands.pipeline import train_run
from medfit.data.manifest import Manifest
from medfit.errors import WeightsError
from medfit.models import load_network
from medfit.models.export import OnnxClassifier, export_onnx, onnx_max_abs_difference
from medfit.models.finetune import merge_lora
from medfit.run_folder import RunFolder
from medfit.train.inputs import dataset_for
from medfit.train.predict import predict_probabilities

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def run_config(shared_data, out, name, model, optim=None):
    """One epoch on 60 PneumoniaMNIST images per split at 32 px."""
    return config_from_dict({
        "name": name, "seed": 0, "output_dir": str(out),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 32, "channels": 1,
                 "limit_per_split": 60},
        "model": model,
        "train": {"epochs": 1, "batch_size": 32, "optim": optim or {"lr": 0.001}, "logger": "none",
                  "progress_bar": False},
        "evaluate": {"bootstrap": 20},
    })


@pytest.fixture(scope="module")
def lora_run(shared_data, tmp_path_factory):
    """A ViT-Tiny LoRA run with a separate head learning rate."""
    model = {"name": "vit_tiny_patch16_224", "kwargs": {"img_size": 32, "depth": 2}, "finetune": "lora",
             "lora": {"r": 4}}
    cfg = run_config(shared_data, tmp_path_factory.mktemp("runs"), "vit-lora", model, {"lr": 0.001, "head_lr": 0.01})
    return train_run(cfg).path


def test_lora_run_reports_parameters_and_reloads_identically(lora_run):
    metrics = json.loads((lora_run / "train_info.json").read_text())  # metrics.json copies it
    trainable, total = metrics["parameters"]["trainable"], metrics["parameters"]["total"]
    assert trainable == 2 * 4 * (768 + 384 + 960 + 960) + 193 and total > 30 * trainable
    cfg = RunFolder(lora_run).read_config()
    model = load_network(RunFolder(lora_run))  # a fresh build with LoRA, loaded from checkpoints/best.ckpt
    pred = pd.read_csv(lora_run / "predictions.csv")
    df = pd.read_csv(lora_run / "manifest.csv")
    test = Manifest(df[df["split"] == "test"].reset_index(drop=True), cfg.data.label_columns, cfg.data.class_names,
                    cfg.data.task)
    probs = predict_probabilities(model, dataset_for(test, cfg, False), test.target, progress=False)[:, 0]
    saved = pred[pred["split"] == "test"]["prob"].to_numpy()
    assert abs(probs - saved).max() < 1e-6  # CSV round-trip only


def test_onnx_export_matches_and_predict_runs_from_it(lora_run, tmp_path, capsys):
    assert main(["export", str(lora_run)]) == 0
    info = json.loads((lora_run / "model.json").read_text())
    assert info["max_abs_difference"] <= 1e-4
    out = tmp_path / "onnx.csv"
    assert main(["predict", str(lora_run), "--split", "test", "--onnx", str(lora_run / "model.onnx"),
                 "--out", str(out)]) == 0
    from_onnx = pd.read_csv(out)["prob"].to_numpy()
    saved = pd.read_csv(lora_run / "predictions.csv").query("split == 'test'")["prob"].to_numpy()
    assert len(from_onnx) == len(saved) and abs(from_onnx - saved).max() <= 1e-4


def test_cnn_with_cbam_exports_within_tolerance(tmp_path):
    from medfit.config import LoraConfig, ModelConfig
    from medfit.models import build_model

    model = build_model(ModelConfig(name="resnet10t", cbam=["default"], finetune="lora", lora=LoraConfig(r=2)), 3)
    with torch.no_grad():  # make the LoRA update non-zero so merging matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    path = export_onnx(model, tmp_path / "m.onnx", 1, 32)
    x = torch.rand(5, 1, 32, 32)  # another batch size than the export example
    assert onnx_max_abs_difference(model, path, x) <= 1e-4
    assert OnnxClassifier(path)(x).shape == (5, 3)
    with pytest.raises(WeightsError, match="ONNX file not found"):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_fusion_run_from_a_trained_lora_run(lora_run, shared_data, tmp_path):
    fusion = {"kind": "fusion", "fusion": {"dim": 32, "hidden": 16,
                                           "members": [{"run": str(lora_run), "freeze": True}, {"name": "resnet10t"}]}}
    optim = {"lr": 0.001, "head_lr": 0.01, "backbone_lr": 0.0001}
    run = train_run(run_config(shared_data, tmp_path, "fusion", fusion, optim)).path
    model = load_network(RunFolder(run))
    # The frozen member is the LoRA run's network with LoRA merged, unchanged by fusion training.
    vit = merge_lora(load_network(RunFolder(lora_run)))
    torch.testing.assert_close(model.members[0].blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    assert model.fused_features(torch.rand(2, 1, 32, 32)).shape == (2, 64)
    metrics = json.loads((run / "train_info.json").read_text())
    member_params = sum(p.numel() for p in model.members[1].parameters())
    head_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("members."))
    assert metrics["parameters"]["trainable"] == member_params + head_params
    pred = pd.read_csv(run / "predictions.csv")
    assert set(pred["split"]) == {"val", "test"} and pred["prob"].between(0, 1).all()
