"""Input normalisation inside the network (D8): the weights' own mean/std, applied alike by training, predict, the
checkpoint reload and ONNX; recorded in the run; none for random init; a medfit run's own carried on."""
import logging

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from medfit.commands.pipeline import finish_run, train_run
from medfit.config import ModelConfig, config_from_dict
from medfit.data.manifest import Manifest
from medfit.models import build_model, load_network
from medfit.models.export import OnnxClassifier, export_run
from medfit.models.clip import ClipImageInput
from medfit.models.normalise import RANDOM_INIT, normalisation_records, per_channel
from medfit.train.inputs import dataset_for

torch.set_num_threads(1)
NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory):
    """resnet10t weights as timm's save_for_hf writes them: config.json (pretrained_cfg mean/std) + model.safetensors."""
    folder = tmp_path_factory.mktemp("weights") / "resnet10t"
    torch.manual_seed(0)
    timm.models.save_for_hf(timm.create_model("resnet10t.c3_in1k"), str(folder), safe_serialization=True)
    return folder


def plain_copy(model: torch.nn.Module, channels: int) -> torch.nn.Module:
    """The same weights in a timm resnet10t with nothing in front of it."""
    plain = timm.create_model("resnet10t", in_chans=channels, num_classes=1)
    missing, _ = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    return plain.eval()


def test_the_weights_mean_and_std_are_applied_inside_the_network(weights_folder):
    model = build_model(ModelConfig(name="resnet10t", pretrained=str(weights_folder), in_chans=1), 1).eval()
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    mean, std = np.mean(IMAGENET_MEAN), np.mean(IMAGENET_STD)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain_copy(model, 1)((x - mean) / std), rtol=1e-5, atol=1e-5)


def test_channels_follow_timms_first_conv_adaptation():
    assert per_channel(IMAGENET_MEAN, 1) == pytest.approx([np.mean(IMAGENET_MEAN)])
    assert per_channel(IMAGENET_MEAN, 3) == IMAGENET_MEAN
    assert per_channel(IMAGENET_MEAN, 5) == IMAGENET_MEAN + IMAGENET_MEAN[:2]  # 2.5D: RGB filters repeated


def test_a_bare_weight_file_warns_and_stays_in_unit_range(weights_folder, tmp_path, caplog):
    bare = tmp_path / "resnet10t.safetensors"
    save_file(timm.create_model("resnet10t").state_dict(), str(bare))
    with caplog.at_level(logging.WARNING, logger="medfit"):
        model = build_model(ModelConfig(name="resnet10t", pretrained=str(bare), in_chans=1), 1).eval()
    assert any("carry no input normalisation" in r.getMessage() for r in caplog.records)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain_copy(model, 1)(x))


@pytest.fixture(scope="module")
def pretrained_run(shared_data, weights_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = config_from_dict({
        "name": "normalised", "seed": 0, "output_dir": str(out),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 32, "limit_per_split": 40},
        "model": {"name": "resnet10t", "pretrained": str(weights_folder)},
        "train": {"epochs": 1, "batch_size": 20, "logger": "csv", "progress_bar": False},
        "evaluate": {"bootstrap": 20}, "audit": {"enabled": False},
    })
    return finish_run(train_run(cfg))


def test_train_predict_reload_and_onnx_give_the_same_numbers(pretrained_run):
    run = pretrained_run
    info = run.read_json("train_info")
    (norm,) = info["input_normalisation"]
    assert norm["module"] == "medfit_input" and norm["mean"] == pytest.approx([np.mean(IMAGENET_MEAN)])
    assert norm["std"] == pytest.approx([np.mean(IMAGENET_STD)]) and norm["source"].startswith("timm pretrained_cfg")
    cfg = run.read_config()
    df = run.read_manifest()
    test = Manifest(df[df["split"] == "test"].reset_index(drop=True), cfg.data.label_columns, cfg.data.class_names)
    x = dataset_for(test, cfg, False).images.float()
    model = load_network(run)
    with torch.no_grad():
        reloaded = torch.sigmoid(model(x))[:, 0].numpy()
        by_hand = torch.sigmoid(plain_copy(model, 1)((x - norm["mean"][0]) / norm["std"][0]))[:, 0].numpy()
    saved = run.read_predictions().query("split == 'test'")["prob"].to_numpy()
    np.testing.assert_allclose(reloaded, by_hand, atol=1e-5)
    np.testing.assert_allclose(saved, reloaded, atol=1e-6)  # predict_run applied it too
    export_run(run)
    with torch.no_grad():
        onnx = torch.sigmoid(OnnxClassifier(run.file("onnx"))(x))[:, 0].numpy()
    np.testing.assert_allclose(onnx, reloaded, atol=1e-5)
    page = run.file("report").read_text()
    assert "input normalisation" in page and "0.449" in page and "timm pretrained_cfg" in page


def test_fine_tuning_from_a_run_carries_its_normalisation(pretrained_run):
    model = build_model(ModelConfig(name="resnet10t", pretrained=str(pretrained_run.path), in_chans=1), 1)
    norm = model.medfit_input
    assert norm.mean.flatten().tolist() == pytest.approx([np.mean(IMAGENET_MEAN)])
    assert norm.source.startswith("carried from the medfit run")


def test_open_clip_models_record_their_own_preprocessing():
    visual = torch.nn.Linear(2, 2)
    visual.preprocess_cfg = {"size": 32, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
    (record,) = normalisation_records(torch.nn.Sequential(ClipImageInput(visual), visual))
    assert record["mean"] == pytest.approx([0.5, 0.4, 0.3]) and record["source"].startswith("open_clip")
    assert normalisation_records(torch.nn.Linear(2, 2))[0]["source"] == RANDOM_INIT
