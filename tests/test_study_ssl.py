"""The self-supervised ViT study end to end from configs/ssl-vit.yaml, at test size on the real chest X-rays:
pretrain (MAE + DINO + box localisation on a windowed ViT) -> fine-tune with the windowed layout kept -> linear probe
-> predict -> explain (attention rollout through the windows) -> compare -> report."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from chest_subset import chest_subset
from medfit.cli import main
from medfit.config import load_config
from medfit.models import build_network, load_network
from medfit.models.vitdet import WindowedBlock
from medfit.run_folder import RunFolder

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ssl-vit.yaml"
PER_SPLIT = 48
VIT = "{img_size: 32, patch_size: 4, embed_dim: 64, depth: 3, num_heads: 2}"  # 8 x 8 patch grid
SMALL = ["data.image_size=32", f"data.limit_per_split={PER_SPLIT}", f"model.kwargs={VIT}", "model.window_size=4",
         "pretrain.window_size=4", "train.epochs=2", "train.batch_size=16", "train.progress_bar=false",
         "train.accelerator=cpu", "train.optim.warmup_epochs=0", "evaluate.bootstrap=100",
         "pretrain.max_steps=4", "pretrain.batch_size=16", "pretrain.dino_out_dim=64", "pretrain.dino_hidden_dim=32",
         "pretrain.dino_bottleneck_dim=16", "pretrain.decoder_dim=32", "pretrain.decoder_depth=1",
         "pretrain.decoder_heads=2", "pretrain.local_crops=2", "pretrain.pictures=2"]


@pytest.fixture(scope="module")
def study(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ssl")
    runs = tmp / "runs"
    # 300 + 300 training images (val: 10% of them by patient), 24 + 24 test images: all the runs use 48 per split
    data = chest_subset(shared_data, tmp / "data", {"train": 300, "test": 24})
    common = ["--data", str(data), "--set", f"output_dir={runs}", *SMALL]
    assert main(["pretrain", str(CONFIG), "--name", "pretrain", *common]) == 0
    tuned = [*common, f"model.pretrained={runs / 'pretrain'}"]
    start = build_network(load_config(CONFIG, tuned[3:]), 1)  # what fine-tuning starts from
    assert main(["train", str(CONFIG), "--name", "finetune", *tuned]) == 0
    assert main(["train", str(CONFIG), "--name", "probe", *tuned, "model.finetune=linear", "train.optim.lr=0.01"]) == 0
    return {"tmp": tmp, "runs": runs, "start": start}


def run(study, name: str) -> RunFolder:
    return RunFolder(study["runs"] / name)


def test_the_config_names_each_study_step():
    cfg = load_config(CONFIG)
    assert cfg.pretrain.objectives == ["mae", "dino", "boxloc"] and cfg.pretrain.pos_embed == "log_sincos"
    assert (cfg.model.window_size, cfg.model.global_every) == (cfg.pretrain.window_size, cfg.pretrain.global_every) \
        == (7, 3)
    assert cfg.model.pretrained == "runs/ssl-vit-pretrain"
    text = CONFIG.read_text()
    assert text.count("# study:") >= 6 and "stand-in" in text.lower() and "finetune=linear" in text


def test_pretraining_writes_windowed_encoder_weights_and_probe_scores(study):
    pre = run(study, "pretrain")
    info = pre.read_json("pretrain_metrics")
    assert info["steps"] == 4 and info["objectives"] == ["mae", "dino", "boxloc"]
    log = pd.read_csv(pre.file("training_log"))
    assert {"mae_loss", "dino_loss", "boxloc_loss"} <= set(log.columns)  # the three objectives, cycled per batch
    probe = info["probe"]
    assert probe["split"] == "test" and probe["scored_images"] == PER_SPLIT
    assert 0.5 < probe["pretrained"]["linear_probe_auc"] <= 1  # frozen features separate the classes (measured 0.691)
    assert pre.read_config().pretrain.window_size == 4


def test_fine_tuning_keeps_the_windowed_layout_and_starts_from_the_pretrained_weights(study):
    saved = load_file(str(run(study, "pretrain").file("encoder_weights")))
    start = study["start"]
    assert [isinstance(b, WindowedBlock) for b in start.blocks] == [True, True, False]  # global: every 3rd from last
    state = start.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    tuned = load_network(run(study, "finetune"))
    assert [isinstance(b, WindowedBlock) for b in tuned.blocks] == [True, True, False]
    assert tuned.blocks[0].window_size == 4
    assert any(not torch.equal(tuned.state_dict()[k], v) for k, v in saved.items())  # full fine-tuning moved them
    info = run(study, "finetune").read_json("train_info")["pretrained"]
    assert info["matched"] == info["backbone_tensors"] and info["layout_note"] == ""


def test_the_linear_probe_trains_only_the_head(study):
    saved = load_file(str(run(study, "pretrain").file("encoder_weights")))
    probe = load_network(run(study, "probe"))
    state = probe.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())  # the encoder stayed as pretrained
    params = run(study, "probe").read_metrics()["parameters"]
    assert params["trainable"] == 64 + 1 and params["total"] > 100 * params["trainable"]  # head: 64 -> 1


def test_predict_explain_compare_and_report(study):
    tuned, probe = run(study, "finetune"), run(study, "probe")
    out = study["tmp"] / "test_predictions.csv"
    assert main(["predict", str(tuned.path), "--split", "test", "--out", str(out)]) == 0
    again, saved = pd.read_csv(out), tuned.read_predictions()
    saved = saved[saved["split"] == "test"]
    assert len(again) == PER_SPLIT
    assert (again.set_index("image")["prob"] - saved.set_index("image")["prob"]).abs().max() < 1e-5
    assert main(["explain", str(tuned.path), "--gallery", "--per-group", "1", "--method", "rollout"]) == 0
    gallery = tuned.read_json("gallery")
    assert gallery["method"] == "rollout" and gallery["cases"]
    compared = study["tmp"] / "compare.json"
    assert main(["compare", str(tuned.path), str(probe.path), "--out", str(compared)]) == 0
    test = json.loads(compared.read_text())["splits"]["test"]
    diff = tuned.read_metrics()["splits"]["test"]["auc"] - probe.read_metrics()["splits"]["test"]["auc"]
    assert test["n"] == PER_SPLIT and test["difference"] == pytest.approx(diff, abs=1e-6)
    assert main(["report", str(tuned.path)]) == 0
    page = tuned.file("report").read_text()
    assert "Shift between development and test" in page and "logistic regression on 16x16 pixels" in page
