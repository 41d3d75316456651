"""ViTDet windowed attention kept at fine-tuning: the registry rebuilds the pretraining run's layout; rollout reads it."""
import numpy as np
import pytest
import torch

from medfit.config import ModelConfig, PretrainConfig, config_from_dict
from medfit.errors import ConfigError
from medfit.explain.rollout import attention_maps, attention_rollout
from medfit.models import build_model
from medfit.models.registry import load_report
from medfit.models.vitdet import WindowedBlock, pretrained_layout, window_attention_to_grid
from medfit.pretrain.backbone import create_vit
from medfit.pretrain.fit import export_backbone
from medfit.run_folder import RunFolder

VIT_KW = dict(patch_size=4, embed_dim=64, depth=3, num_heads=2, img_size=28)


@pytest.fixture(scope="module")
def pretrain_folder(tmp_path_factory):
    """A pretraining run folder as `medfit pretrain` leaves it: config (windows of 4, every 2nd block global),
    pretrain_metrics and the encoder's timm weights."""
    cfg = config_from_dict({"name": "ssl", "model": {"name": "vit_tiny_patch16_224", "kwargs": VIT_KW},
                            "pretrain": {"window_size": 4, "global_every": 2, "pos_embed": "log_sincos"}})
    run = RunFolder(tmp_path_factory.mktemp("pretrain") / "ssl")
    torch.manual_seed(0)
    vit = create_vit(cfg.model, cfg.pretrain, 28)
    run.write_config(cfg)
    run.write_json("pretrain_metrics", {"steps": 0})
    export_backbone(vit, run.file("encoder_weights"))
    return run, vit


def test_fine_tuning_rebuilds_the_windowed_layout_with_the_pretrained_weights(pretrain_folder):
    run, vit = pretrain_folder
    assert pretrained_layout(str(run.path)) == (4, 2) == pretrained_layout(str(run.file("encoder_weights")))
    cfg = ModelConfig(name="vit_tiny_patch16_224", in_chans=1, pretrained=str(run.path), kwargs=VIT_KW,
                      window_size=4, global_every=2)
    model = build_model(cfg, 1)
    windowed = [isinstance(b, WindowedBlock) for b in model.blocks]
    assert windowed == [isinstance(b, WindowedBlock) for b in vit.blocks] == [False, True, False]  # every 2nd block from the last is global
    assert model.blocks[1].window_size == 4
    state = model.state_dict()
    for key, value in vit.state_dict().items():
        assert torch.equal(state[key], value), key
    report = load_report(model)
    assert report["matched"] == report["backbone_tensors"] and report["layout_note"] == ""
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():  # same blocks, same weights: the fine-tuned network's features are the pretrained encoder's
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True), vit.eval()(x))


def test_a_global_fine_tune_of_a_windowed_encoder_is_named(pretrain_folder):
    run, _ = pretrain_folder
    model = build_model(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, pretrained=str(run.path),
                                    kwargs=VIT_KW), 1)
    assert not any(isinstance(b, WindowedBlock) for b in model.blocks)
    note = load_report(model)["layout_note"]
    assert "windows of 4 patches" in note and "model.window_size: 4" in note and "model.global_every: 2" in note
    with pytest.raises(ConfigError, match="VisionTransformer"):
        build_model(ModelConfig(name="resnet10t", in_chans=1, window_size=4), 1)
    with pytest.raises(ConfigError, match="window_size"):
        config_from_dict({"model": {"kind": "open_clip", "window_size": 4}})


def test_window_attention_spread_over_the_grid_and_rolled_out():
    torch.manual_seed(0)
    plain = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW), PretrainConfig(), 28)
    x = torch.rand(2, 1, 28, 28)
    whole = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW), PretrainConfig(), 28)
    whole.load_state_dict(plain.state_dict())
    whole.blocks[0] = WindowedBlock(whole.blocks[0], 7, 1)  # one window covering the 7x7 grid: global attention
    expected = attention_maps(plain, x)[0].numpy()
    spread = window_attention_to_grid(attention_maps(whole, x)[0].numpy(), 2, 7, 7, 1)
    np.testing.assert_allclose(spread, expected, atol=1e-6)
    small = create_vit(ModelConfig(name="vit_tiny_patch16_224", in_chans=1, kwargs=VIT_KW),
                       PretrainConfig(window_size=4, global_every=3), 28)
    raw = attention_maps(small, x)[0].numpy()
    assert raw.shape == (2 * 4, 2, 17, 17)  # 7x7 grid padded to 8x8: four windows of 4x4 patches + class token
    full = window_attention_to_grid(raw, 2, 7, 4, 1)
    assert full.shape == (2, 2, 50, 50)
    patch = lambda r, c: 1 + r * 7 + c  # noqa: E731
    assert full[:, :, patch(0, 0), patch(4, 4)].max() == 0 and full[:, :, patch(0, 0), patch(3, 3)].min() > 0
    assert full[:, :, 0].sum(-1) == pytest.approx(np.ones((2, 2)), abs=0.3)  # class row: mean over windows
    maps = attention_rollout(small.eval(), x)
    assert maps.shape == (2, 28, 28) and maps.min() == 0 and maps.max() == pytest.approx(1.0)
