"""Pretraining backbone options, the `medfit pretrain` run folder, and its weights loading into `medfit train`."""
import json
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from medfit.cli import main
from medfit.config import ModelConfig, PretrainConfig, config_from_dict
from medfit.errors import ConfigError
from medfit.models import build_model
from medfit.pretrain.backbone import WindowedBlock, create_vit, global_block_indices, log_sincos_pos_embed
from medfit.pretrain.fit import pretrain_strategy
from medfit.pretrain.module import PretrainModule, wrap_encoder

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
VIT_KW = dict(patch_size=4, embed_dim=64, depth=2, num_heads=2)


def test_log_spaced_sincos_position_embedding():
    grid, dim = 7, 64
    table = log_sincos_pos_embed(grid, dim, num_prefix_tokens=1)
    assert table.shape == (1, 1 + grid * grid, dim)
    assert torch.equal(table[0, 0], torch.zeros(dim))  # the class token carries no position
    patches = table[0, 1:]
    assert torch.cdist(patches, patches).add(torch.eye(grid * grid) * 9).min() > 0.1  # every position distinct
    n = dim // 4
    freqs = math.pi * 2 ** torch.linspace(0, math.log2(grid / 2), n)  # log-spaced: constant ratio, 1 .. grid/2
    x = (torch.arange(grid) + 0.5) / grid * 2 - 1
    torch.testing.assert_close(patches[:grid, :n], torch.sin(x[:, None] * freqs[None]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(patches[::grid, 3 * n:], torch.cos(x[:, None] * freqs[None]), atol=1e-5, rtol=1e-5)


def test_windowed_attention_keeps_timm_keys_and_attends_only_within_windows():
    plain = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW), PretrainConfig(), 28)
    windowed = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW),
                          PretrainConfig(window_size=4, global_every=2, pos_embed="log_sincos"), 28)
    assert global_block_indices(12, 3) == [2, 5, 8, 11]  # ViTDet: the last block of every group is global
    assert isinstance(windowed.blocks[0], WindowedBlock) and not isinstance(windowed.blocks[1], WindowedBlock)
    assert list(windowed.state_dict()) == list(plain.state_dict())
    assert not windowed.pos_embed.requires_grad
    windowed.load_state_dict(plain.state_dict())
    encoder = wrap_encoder(windowed).eval()
    images = torch.rand(2, 1, 28, 28)
    changed = images.clone()
    changed[:, :, :4, :4] = 1 - changed[:, :, :4, :4]  # patch (0, 0): window 0 of the 7x7 grid padded to 8x8
    with torch.no_grad():
        out = [windowed.blocks[0](encoder.preprocess(x)) for x in (images, changed)]
    diff = (out[0] - out[1]).abs().amax(-1)[:, 1:].reshape(2, 7, 7)
    assert diff[:, :4, :4].amax() > 0 and diff[:, 4:, :].amax() == 0 and diff[:, :, 4:].amax() == 0
    # a window as large as the grid is plain global attention
    whole = WindowedBlock(plain.blocks[0], 7, 1).eval()
    tokens = wrap_encoder(plain).preprocess(images)
    torch.testing.assert_close(whole(tokens), plain.blocks[0].eval()(tokens))


def test_objectives_cycle_batch_by_batch_and_ddp_is_told_about_unused_heads():
    vit = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW), PretrainConfig(), 28)
    module = PretrainModule(vit, PretrainConfig(objectives=["mae", "dino", "mae", "boxloc"], dino_out_dim=64), 28, 10)
    assert [module.objective_at(s) for s in range(6)] == ["mae", "dino", "mae", "boxloc", "mae", "dino"]
    assert set(module.objectives) == {"mae", "dino", "boxloc"}
    cfg = config_from_dict({"train": {"devices": 2}})
    assert pretrain_strategy(cfg) == "ddp_find_unused_parameters_true"
    cfg = config_from_dict({"train": {"devices": 2}, "pretrain": {"objectives": ["mae"]}})
    assert pretrain_strategy(cfg) == "auto"
    with pytest.raises(ConfigError, match="VisionTransformer"):
        create_vit(ModelConfig(name="resnet18", in_chans=1), PretrainConfig(), 28)
    with pytest.raises(ConfigError, match="unknown objective"):
        PretrainModule(vit, PretrainConfig(objectives=["simclr"]), 28, 10)


@pytest.fixture(scope="module")
def pretrain_run(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    config = tmp / "pretrain.yaml"
    config.write_text(json.dumps({
        "name": "ssl", "seed": 0, "output_dir": str(tmp / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "channels": 1,
                 "limit_per_split": 160},
        "model": {"name": "vit_tiny_patch16_224", "in_chans": 1, "kwargs": VIT_KW},
        "train": {"logger": "csv", "progress_bar": False},
        "pretrain": {"max_steps": 6, "batch_size": 32, "optim": {"warmup_epochs": 0.5}, "dino_out_dim": 128,
                     "dino_hidden_dim": 64, "dino_bottleneck_dim": 32, "decoder_dim": 32, "decoder_depth": 1,
                     "decoder_heads": 2, "local_crops": 2, "pictures": 4},
    }))
    assert main(["pretrain", str(config)]) == 0
    return config, tmp / "runs" / "ssl"


def test_pretrain_verb_writes_weights_pictures_and_probe_scores(pretrain_run, capsys):
    config, run = pretrain_run
    for name in ("config.yaml", "manifest.csv", "model.safetensors", "checkpoints/last.ckpt", "logs/metrics.csv",
                 "plots/mae_reconstructions.png", "plots/attention_maps.png"):
        assert (run / name).is_file(), name
    info = json.loads((run / "pretrain_metrics.json").read_text())
    assert info["steps"] == 6 and info["objectives"] == ["mae", "dino", "boxloc"]
    log = pd.read_csv(run / "logs" / "metrics.csv")
    assert {"mae_loss", "dino_loss", "boxloc_loss"} <= set(log.columns)  # all three objectives were trained
    probe = info["probe"]
    assert probe["split"] == "test" and probe["scored_images"] == 160
    for kind in ("pretrained", "random_init"):
        assert 0.5 < probe[kind]["linear_probe_auc"] <= 1 and 0 <= probe[kind]["knn_auc"] <= 1
    assert (run / "plots" / "attention_maps.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["pretrain", str(config)]) == 2  # a finished run is not overwritten
    assert "--resume" in capsys.readouterr().err


def test_pretrained_weights_load_into_medfit_train_models(pretrain_run):
    _, run = pretrain_run
    saved = load_file(str(run / "model.safetensors"))
    assert not any(k.startswith("head") for k in saved)
    for finetune, source in (("full", run / "model.safetensors"), ("linear", run)):
        cfg = ModelConfig(name="vit_tiny_patch16_224", in_chans=1, pretrained=str(source), finetune=finetune,
                          kwargs=dict(VIT_KW, img_size=28))
        model = build_model(cfg, 1)
        state = model.state_dict()
        for key, value in saved.items():
            assert torch.equal(state[key], value), key
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head") for n in trainable)  # linear probe: backbone frozen
