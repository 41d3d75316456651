"""Model kinds by registry: every key is read by the chosen kind or refused; volume modes wrap the kinds they can."""
import pytest
import torch

from medfit.config import ExperimentConfig, config_from_dict, updated
from medfit.config.kinds import KIND_KEYS
from medfit.errors import ConfigError
from medfit.models import build_network
from medfit.models.cbam import CBAM
from medfit.models.finetune import param_groups
from medfit.models.registry import KINDS
from medfit.models.volume_models import GatedAttentionMIL


@pytest.mark.parametrize("model, key", [
    ({"kind": "open_clip", "cbam": ["default"]}, "model.cbam"),
    ({"kind": "open_clip", "name": "resnet50"}, "model.name"),
    ({"kind": "monai3d", "name": "resnet10", "pretrained": "w.safetensors"}, "model.pretrained"),
    ({"kind": "monai3d", "name": "resnet10", "finetune": "lora"}, "model.finetune"),
    ({"kind": "monai3d", "name": "resnet10", "drop_rate": 0.2}, "model.drop_rate"),
    ({"kind": "timm", "clip": {"prompts": {"a": "b"}}}, "model.clip.prompts"),
    ({"kind": "open_clip", "clip": {"prompts": {"a": "b"}}}, "model.clip.prompts"),
    ({"kind": "fusion", "kwargs": {"img_size": 32}}, "model.kwargs"),
    ({"kind": "vlm", "name": "resnet50"}, "model.name"),
    ({"name": "resnet18", "lora": {"r": 4}}, "model.lora.r"),
])
def test_a_key_the_kind_does_not_read_is_refused_on_one_line(model, key):
    volume = {"mode": "3d"} if model.get("kind") == "monai3d" else {}
    with pytest.raises(ConfigError) as err:
        config_from_dict({"model": model, "volume": volume})
    message = str(err.value)
    assert message.startswith(key) and "\n" not in message


def test_former_kind_names_point_to_model_kind():
    with pytest.raises(ConfigError, match="set model.kind: fusion"):
        config_from_dict({"model": {"name": "fusion"}})


@pytest.mark.parametrize("mode, kind, ok", [
    ("3d", "timm", False), ("slice", "monai3d", False), ("2.5d", "open_clip", False), ("slice_set", "timm", True),
    ("3d", "monai3d", True), ("2.5d", "timm", True),
])
def test_volume_modes_wrap_the_kinds_they_can_or_refuse(mode, kind, ok):
    raw = {"model": {"kind": kind, **({"name": "resnet10"} if kind == "monai3d" else {})}, "volume": {"mode": mode}}
    if ok:
        assert config_from_dict(raw).volume.mode == mode
    else:
        with pytest.raises(ConfigError, match="volume.mode|monai3d"):
            config_from_dict(raw)


def test_input_channels_follow_the_data_and_a_mismatch_is_an_error():
    assert config_from_dict({"data": {"channels": 3}}).model.in_chans == 3
    assert config_from_dict({"data": {"channels": 3}, "model": {"in_chans": 3}}).model.in_chans == 3
    with pytest.raises(ConfigError, match="model.in_chans 1 differs from data.channels 3"):
        config_from_dict({"data": {"channels": 3}, "model": {"in_chans": 1}})


def test_every_kind_has_a_builder():
    assert set(KINDS) | {"fusion"} == set(KIND_KEYS)


def test_slice_set_honours_cbam_and_the_head_and_backbone_learning_rates():
    raw = {"data": {"image_size": 32}, "volume": {"mode": "slice_set"}, "model": {"name": "resnet10t", "cbam": ["layer2"]},
           "train": {"optim": {"lr": 0.01, "head_lr": 0.1, "backbone_lr": 0.001}}}
    net = build_network(config_from_dict(raw), 1)
    assert isinstance(net, GatedAttentionMIL)
    assert [n for n, m in net.named_modules() if isinstance(m, CBAM)] == ["encoder.layer2.cbam"]
    groups = {g["name"]: g for g in param_groups(net, config_from_dict(raw).train.optim)}
    assert groups["head"]["lr"] == 0.1 and groups["backbone"]["lr"] == 0.001
    head = {id(p) for p in groups["head"]["params"]}
    assert {id(p) for p in net.head.parameters()} | {id(p) for p in net.encoder.layer2.cbam.parameters()} <= head
    assert {id(p) for p in net.encoder.layer1.parameters()} <= {id(p) for p in groups["backbone"]["params"]}
    assert net(torch.rand(2, 4, 1, 32, 32)).shape == (2, 1)
    raw["model"]["finetune"] = "linear"  # a linear probe of the encoder: only the MIL head and CBAM train
    probe = build_network(config_from_dict(raw), 1)
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("encoder") else "")
                 for n, p in probe.named_parameters() if p.requires_grad}
    assert trainable == {"attention_v", "attention_u", "attention_w", "head", "encoder.layer2"}


def test_nested_sections_keep_their_own_defaults():
    cfg = config_from_dict({"vlm": {"optim": {"lr": 0.1}, "lora": {"r": 2}}, "pretrain": {"optim": {"lr": 0.2}}})
    assert cfg.vlm.optim.scheduler == "none" and cfg.vlm.optim.grad_clip == 1.0 and "q_proj" in cfg.vlm.lora.targets
    assert cfg.pretrain.optim.weight_decay == 0.05 and cfg.pretrain.optim.warmup_epochs == 5.0


def test_config_is_frozen_and_changed_only_by_updated():
    cfg = ExperimentConfig()
    with pytest.raises(AttributeError):
        cfg.train.epochs = 3
    new = updated(cfg, {"train.epochs": 3, "name": "x"})
    assert (new.train.epochs, new.name, cfg.train.epochs) == (3, "x", 10)
    with pytest.raises(ConfigError, match="train.epochz: unknown key"):
        updated(cfg, {"train.epochz": 3})
