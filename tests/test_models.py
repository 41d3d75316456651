"""Backbones, pretrained loading, CBAM, fine-tuning methods (full / linear / LoRA), parameter groups, fusion."""
import copy

import pytest
import timm
import torch
from safetensors.torch import save_file

from medfit.config import (ExperimentConfig, FusionConfig, FusionMemberConfig, LoraConfig, ModelConfig, OptimConfig,
                           updated)
from medfit.errors import ConfigError, WeightsError
from medfit.models import build_model, count_parameters
from medfit.models.backbones import ZOO
from medfit.models.cbam import CBAM
from medfit.models.finetune import merge_lora, param_groups
from medfit.run_folder import RunFolder

torch.set_num_threads(1)
VIT = dict(name="vit_tiny_patch16_224", kwargs={"img_size": 32, "depth": 2})


def _train_steps(model, steps=3, lr=0.05, seed=0):
    """A few SGD steps on random 32 px images through the model's own parameter groups."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(param_groups(model, OptimConfig(lr=lr)), lr=lr)
    model.train()
    for _ in range(steps):
        x = torch.rand(4, 1, 32, 32, generator=g)
        y = torch.randint(0, 2, (4, 1), generator=g).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_zoo_names_are_timm_models():
    for alias, name in ZOO.items():
        assert timm.is_model(name), alias


def test_grayscale_pretrained_sums_rgb_first_conv(tmp_path):
    src = timm.create_model("resnet10t", num_classes=7)
    save_file(src.state_dict(), str(tmp_path / "model.safetensors"))
    model = build_model(ModelConfig(name="resnet10t", pretrained=str(tmp_path), in_chans=1), 1)
    first = model.conv1[0].weight
    assert first.shape[1] == 1
    torch.testing.assert_close(first, src.conv1[0].weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert model.fc.out_features == 1  # the 7-class head was dropped, not loaded


def test_vit_pretrained_resamples_position_embedding(tmp_path):
    src = timm.create_model("vit_tiny_patch16_224", num_classes=3)
    torch.save(src.state_dict(), tmp_path / "vit.pth")
    model = build_model(ModelConfig(pretrained=str(tmp_path / "vit.pth"), in_chans=1, **VIT), 2)
    assert model.pos_embed.shape == (1, 1 + 4, 192)
    torch.testing.assert_close(model.cls_token, src.cls_token)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 2)


def test_missing_weight_file_names_path_and_fix(tmp_path):
    missing = tmp_path / "resnet18.safetensors"
    with pytest.raises(WeightsError, match="resnet18.safetensors.*not found.*model.pretrained"):
        build_model(ModelConfig(name="resnet18", pretrained=str(missing)), 1)


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_file(timm.create_model("resnet10t").state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match="do not fit"):
        build_model(ModelConfig(name="resnet14t", pretrained=str(tmp_path / "w.safetensors")), 1)


@pytest.mark.parametrize("name,expected", [
    ("convnext_atto", ["stages.0", "stages.1", "stages.2", "stages.3"]),
    ("efficientnetv2_rw_t", ["blocks.2", "bn2"]),  # after the last fused-MBConv stage and after the last conv
    ("mobilenetv3_small_050", ["blocks.5"]),
])
def test_cbam_after_named_stages(name, expected):
    model = build_model(ModelConfig(name=name, cbam=["default"]), 1)
    found = [n.removesuffix(".cbam") for n, m in model.named_modules() if isinstance(m, CBAM)]
    assert found == expected
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 1)


def test_cbam_configurable_positions_and_unknown_module():
    model = build_model(ModelConfig(name="resnet10t", cbam=["layer2"], finetune="linear"), 1)
    cbams = [n for n, m in model.named_modules() if isinstance(m, CBAM)]
    assert cbams == ["layer2.cbam"]
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias", "layer2.cbam"}  # linear probe still trains the new CBAM
    with pytest.raises(ConfigError, match="no module 'layer9'"):
        build_model(ModelConfig(name="resnet10t", cbam=["layer9"]), 1)


def test_linear_probe_leaves_backbone_unchanged():
    model = build_model(ModelConfig(name="resnet10t", finetune="linear"), 1)
    trainable, total = count_parameters(model)
    assert trainable == model.fc.weight.numel() + model.fc.bias.numel()
    assert total == count_parameters(build_model(ModelConfig(name="resnet10t"), 1))[1]
    before = copy.deepcopy(model.state_dict())
    _train_steps(model)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BatchNorm statistics included


def test_param_groups_give_head_its_own_learning_rate():
    model = build_model(ModelConfig(name="resnet10t"), 1)
    groups = {g["name"]: g for g in param_groups(model, OptimConfig(lr=0.01, head_lr=0.1, backbone_lr=0.001))}
    assert groups["head"]["lr"] == 0.1 and groups["backbone"]["lr"] == 0.001
    assert {id(p) for p in groups["head"]["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    same = param_groups(build_model(ModelConfig(name="resnet10t"), 1), OptimConfig(lr=0.01))
    assert all(g["lr"] == 0.01 for g in same)


def test_lora_vit_counts_reload_and_merge():
    cfg = ModelConfig(finetune="lora", lora=LoraConfig(r=4, alpha=8), **VIT)
    torch.manual_seed(0)
    model = build_model(cfg, 1)
    trainable, total = count_parameters(model)
    blocks = model.base_model.model.blocks
    # r * (in + out) per adapted layer: qkv 192->576, proj 192->192, fc1 192->768, fc2 768->192, plus the head.
    per_block = 4 * ((192 + 576) + (192 + 192) + (192 + 768) + (768 + 192))
    assert trainable == len(blocks) * per_block + 192 + 1
    assert total == count_parameters(build_model(ModelConfig(**VIT), 1))[1] + trainable - 193
    base_before = {k: v.clone() for k, v in model.state_dict().items() if "base_layer" in k}
    _train_steps(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in base_before.items())  # base weights frozen

    # A Lightning-style checkpoint (keys prefixed "model.") reloads into a fresh build to identical outputs.
    ckpt = {"model." + k: v for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    reloaded = build_model(cfg, 1, load_pretrained=False)
    reloaded.load_state_dict({k.removeprefix("model."): v for k, v in ckpt.items()})
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        y = model(x)
        assert torch.equal(reloaded.eval()(x), y)
        assert y.abs().max() > 0
        merged = merge_lora(reloaded)
        assert not any("lora" in n for n, _ in merged.named_parameters())
        assert (merged(x) - y).abs().max() <= 1e-5


def test_lora_cnn_adapts_convs_and_keeps_head_trainable():
    model = build_model(ModelConfig(name="resnet10t", finetune="lora", lora=LoraConfig(r=2)), 1)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("conv1.lora_A" in n for n in names)
    assert any(n.endswith("fc.modules_to_save.default.weight") for n in names)
    assert not any("base_layer" in n or "bn" in n for n in names)


def _fake_run(root, name, model_name):
    """A run folder as training leaves it: config.yaml and a Lightning checkpoint with ``model.`` keys."""
    cfg = updated(ExperimentConfig(), {"name": name, "output_dir": str(root), "model.name": model_name,
                                       "data.class_names": ["normal", "pneumonia"]})
    run = RunFolder.of(root, name)
    run.write_config(cfg)
    torch.manual_seed(len(name))
    net = build_model(cfg.model, 1)
    run.checkpoints.mkdir()
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}}, run.checkpoint("best"))
    return run.path, net


def test_fusion_from_trained_runs(tmp_path):
    run_a, net_a = _fake_run(tmp_path, "a", "resnet10t")
    run_b, net_b = _fake_run(tmp_path, "bb", "mobilenetv3_small_050")
    cfg = ModelConfig(kind="fusion", fusion=FusionConfig(
        dim=64, members=[FusionMemberConfig(run=str(run_a)), FusionMemberConfig(run=str(run_b), freeze=True)]))
    model = build_model(cfg, 3)
    optim = OptimConfig(lr=0.001, head_lr=0.01, backbone_lr=0.0001)
    torch.testing.assert_close(model.members[0].conv1[0].weight, net_a.conv1[0].weight)
    torch.testing.assert_close(model.members[1].conv_stem.weight, net_b.conv_stem.weight)
    x = torch.rand(2, 1, 32, 32)
    assert model.eval().fused_features(x).shape == (2, 2 * 64)
    assert model(x).shape == (2, 3)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.3
    groups = {g["name"]: g["lr"] for g in param_groups(model, optim)}
    assert groups == {"head": 0.01, "backbone": 0.0001}
    frozen = copy.deepcopy(model.members[1].state_dict())
    tuned = model.members[0].conv1[0].weight.clone()
    model.head[-1] = torch.nn.Linear(model.head[-1].in_features, 1)
    _train_steps(model)
    assert all(torch.equal(v, model.members[1].state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(tuned, model.members[0].conv1[0].weight)


def test_fusion_needs_member_runs(tmp_path):
    cfg = ModelConfig(kind="fusion", fusion=FusionConfig(members=[FusionMemberConfig(run=str(tmp_path / "nope")),
                                                                  FusionMemberConfig(name="resnet10t")]))
    with pytest.raises(WeightsError, match="nope: not a run folder"):
        build_model(cfg, 1)
