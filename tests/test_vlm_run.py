"""`medfit vlm` end to end on real chest X-rays with a tiny local VLM: zero-shot and LoRA runs write a normal run folder."""
import json

import medfit  # noqa: F401
import numpy as np
import pandas as pd
import pytest
import yaml

from medfit.cli import VERBS
from medfit.commands.pipeline import finish_run
from medfit.commands.vlm import vlm_run
from medfit.config import config_from_dict, updated
from medfit.errors import DataError
from medfit.models import weights as W
from medfit.models.vlm import load_vlm_run
from medfit.run_folder import RunFolder
from medfit.vlm.fit import load_images, predict_images


def run_vlm(cfg):
    """The `medfit vlm` run as the verb composes it: fit/score, then evaluate and report."""
    return finish_run(vlm_run(cfg)).path
from medfit.vlm.tiny import build_tiny_vlm


def xray_manifest_csv(shared_data, tmp_path) -> str:
    """A small manifest of real Kermany X-rays: train 16, val 8 (from train/, other patients), test 8 (from test/)."""
    root = shared_data / "chest-xray-pneumonia-224"
    rows = []
    for split, folder, start, n in [("train", "train", 0, 8), ("val", "train", 40, 4), ("test", "test", 0, 4)]:
        for label in ("NORMAL", "PNEUMONIA"):
            for f in sorted((root / folder / label).glob("*.jpeg"))[start:start + n]:
                rows.append({"image": str(f), "label": label, "patient_id": f"{split}-{f.stem}", "split": split})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def vlm_config(shared_data, tmp_path, name: str, finetune: str) -> dict:
    return {
        "name": name, "seed": 0, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "csv", "root": xray_manifest_csv(shared_data, tmp_path), "class_names": ["NORMAL", "PNEUMONIA"],
                 "task": "binary", "image_size": 28, "channels": 3},
        "train": {"progress_bar": False, "logger": "none"},
        "evaluate": {"bootstrap": 20},
        "vlm": {"model": str(tmp_path / "tiny-vlm"), "question": "Does this chest X-ray show pneumonia?",
                "options": ["No pneumonia", "Pneumonia"], "finetune": finetune, "lora": {"r": 4, "alpha": 8},
                "epochs": 2, "batch_size": 4, "grad_accum_steps": 2, "optim": {"lr": 0.005}, "gradient_checkpointing": True,
                "device": "cpu", "eval_batch_size": 16},
    }


def check_run_folder(run_dir, trainable: bool) -> dict:
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert {"image", "patient_id", "split", "label", "prob"} <= set(pred.columns)
    assert set(pred["split"]) == {"val", "test"} and pred["prob"].between(0, 1).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["threshold"]["chosen_on"] == "val"
    assert 0 <= metrics["splits"]["test"]["auc"] <= 1 and len(metrics["splits"]["test"]["auc_ci"]) == 2
    assert (metrics["parameters"]["trainable"] > 0) == trainable and metrics["parameters"]["total"] > 0
    report = (run_dir / "report.html").read_text()
    assert "vlm:" in report and "<th>auc</th>" in report  # (a bare "AUC" can occur by chance inside base64 images)
    assert f"<td>{'lora' if trainable else 'zero-shot'}</td>" in report
    return metrics


def test_zero_shot_run_through_the_cli(shared_data, tmp_path):
    cfg = vlm_config(shared_data, tmp_path, "zeroshot", "none")
    path = tmp_path / "vlm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    import argparse

    from medfit.commands import vlm as cli

    assert "vlm" in VERBS
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)  # the verb module directly: building the whole CLI imports every stage
    assert cli.run(parser.parse_args([str(path), "--make-tiny"])) == 0
    run_dir = tmp_path / "runs" / "zeroshot"
    check_run_folder(run_dir, trainable=False)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "logs").exists()
    info = json.loads((run_dir / "train_info.json").read_text())
    assert info["vlm"]["prompt"].endswith("A: No pneumonia\nB: Pneumonia\nASSISTANT: Answer:")
    digest = W.sha256_file(tmp_path / "tiny-vlm" / "model.safetensors")
    assert info["pretrained"]["weights"]["sha256"] == digest  # the weight record, as timm runs keep it
    assert info["pretrained"]["weights"]["source"] == str(tmp_path / "tiny-vlm")
    assert f">{digest[:12]} (weight file" in (run_dir / "report.html").read_text()
    with pytest.raises(DataError, match="previous run"):
        run_vlm(config_from_dict(cfg))


def test_lora_run_writes_adapters_and_its_predictions_reload(shared_data, tmp_path):
    build_tiny_vlm(tmp_path / "tiny-vlm", ["Does this chest X-ray show pneumonia? No pneumonia Pneumonia"])
    cfg = config_from_dict(vlm_config(shared_data, tmp_path, "lora", "lora"))
    run_dir = run_vlm(cfg)
    metrics = check_run_folder(run_dir, trainable=True)
    assert metrics["timing"]["epochs_run"] == 2 and metrics["timing"]["optimizer_steps"] == 4  # 2 epochs x 16 images / (4 x 2)
    assert (run_dir / "checkpoints" / "best" / "adapter_model.safetensors").is_file()
    log = pd.read_csv(run_dir / "logs" / "metrics.csv")
    assert log["train_loss"].notna().sum() == 4 and log["val_auc"].notna().sum() == 2
    # the saved run alone reproduces its test predictions
    pred = pd.read_csv(run_dir / "predictions.csv")
    test = pred[pred["split"] == "test"].reset_index(drop=True)
    from medfit.data.manifest import Manifest

    manifest = Manifest(pd.read_csv(run_dir / "manifest.csv"), ["label"], ["NORMAL", "PNEUMONIA"], "binary").split("test")
    images, _ = load_images(manifest, cfg, "test")
    probs = predict_images(load_vlm_run(RunFolder(run_dir)).classifier, images, 16)
    np.testing.assert_allclose(probs[:, 1], test["prob"].to_numpy(), rtol=1e-6, atol=1e-7)


def test_missing_model_fails_before_anything_is_written(shared_data, tmp_path):
    from medfit.errors import WeightsError

    cfg = updated(config_from_dict(vlm_config(shared_data, tmp_path, "missing", "lora")),
                  {"vlm.model": str(tmp_path / "no-such-model")})
    with pytest.raises(WeightsError, match="no-such-model"):
        run_vlm(cfg)
    assert not (tmp_path / "runs" / "missing").exists()


def test_multiclass_zero_shot_writes_one_probability_per_class(shared_data, tmp_path):
    """NORMAL vs bacterial vs viral pneumonia (from the Kermany file names): prob_<class> columns summing to 1."""
    root = shared_data / "chest-xray-pneumonia-224"
    rows = []
    for split, folder, start in [("val", "train", 0), ("test", "test", 0)]:
        normal = sorted((root / folder / "NORMAL").glob("*.jpeg"))[start:start + 4]
        pneumonia = sorted((root / folder / "PNEUMONIA").glob("*.jpeg"))
        bacteria = [f for f in pneumonia if "_bacteria_" in f.name][:4]
        virus = [f for f in pneumonia if "_virus_" in f.name][:4]
        for label, files in [("normal", normal), ("bacteria", bacteria), ("virus", virus)]:
            rows += [{"image": str(f), "label": label, "patient_id": f"{split}-{f.stem}", "split": split} for f in files]
    pd.DataFrame(rows).to_csv(tmp_path / "three.csv", index=False)
    raw = vlm_config(shared_data, tmp_path, "three", "none")
    raw["data"].update(root=str(tmp_path / "three.csv"), task="multiclass", class_names=["normal", "bacteria", "virus"])
    raw["vlm"]["options"] = ["No pneumonia", "Bacterial pneumonia", "Viral pneumonia"]
    build_tiny_vlm(tmp_path / "tiny-vlm", ["Does this chest X-ray show pneumonia? No Bacterial Viral pneumonia"])
    run_dir = run_vlm(config_from_dict(raw))
    pred = pd.read_csv(run_dir / "predictions.csv")
    cols = ["prob_normal", "prob_bacteria", "prob_virus"]
    assert cols == [c for c in pred.columns if c.startswith("prob_")] and len(pred) == 24
    np.testing.assert_allclose(pred[cols].sum(axis=1), 1.0, rtol=1e-5)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "multiclass" and 0 <= metrics["splits"]["test"]["auc"] <= 1
    info = json.loads((run_dir / "train_info.json").read_text())
    assert "C: Viral pneumonia" in info["vlm"]["prompt"] and len(info["vlm"]["option_token_ids"]) == 3
