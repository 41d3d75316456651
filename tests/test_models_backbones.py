"""model.pretrained beyond a plain timm file: run folders, Lightning checkpoints, prefixed dicts, and refusing misfits."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from medfit.config import ExperimentConfig, ModelConfig, updated
from medfit.run_folder import RunFolder
from medfit.errors import WeightsError
from medfit.models.backbones import create_backbone

torch.set_num_threads(1)


def _source(seed=0, name="resnet10t", **kwargs):
    torch.manual_seed(seed)
    return timm.create_model(name, num_classes=5, **kwargs)


def _run_folder(root, net):
    """A medfit run folder: config.yaml and a Lightning checkpoint whose keys start with ``model.``."""
    cfg = updated(ExperimentConfig(), {"name": "src", "output_dir": str(root), "model.name": "resnet10t",
                                       "data.channels": 3, "data.class_names": [str(i) for i in range(5)],
                                       "data.task": "multiclass"})
    run = RunFolder.of(root, "src")
    run.write_config(cfg)
    run.checkpoints.mkdir()
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}, "epoch": 3},
               run.checkpoint("best"))
    return run.path


def _assert_backbone_equal(model, src):
    torch.testing.assert_close(model.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    torch.testing.assert_close(model.layer4[0].bn2.running_var, src.layer4[0].bn2.running_var)


def test_lightning_checkpoint_file_loads_its_model_weights(tmp_path):
    src = _source()
    ckpt = _run_folder(tmp_path, src) / "checkpoints" / "best.ckpt"
    model, report = create_backbone(ModelConfig(name="resnet10t", pretrained=str(ckpt), in_chans=1), 2)
    _assert_backbone_equal(model, src)
    torch.testing.assert_close(model.conv1[0].weight, src.conv1[0].weight.sum(dim=1, keepdim=True))
    head = 2  # fc.weight, fc.bias
    assert report["matched"] == len(src.state_dict()) - head
    assert report["missing"] == 0 and report["unexpected"] == 0 and report["mismatched"] == 0
    assert report["head_dropped"] == ["fc.bias", "fc.weight"]


def test_run_folder_loads_its_best_checkpoint(tmp_path):
    src = _source(1)
    run = _run_folder(tmp_path, src)
    model, report = create_backbone(ModelConfig(name="resnet10t", pretrained=str(run), in_chans=3), 1)
    _assert_backbone_equal(model, src)
    torch.testing.assert_close(model.conv1[0].weight, src.conv1[0].weight)
    assert report["matched"] == report["backbone_tensors"] == len(src.state_dict()) - 2
    assert report["weights"]["kind"] == "run"


def test_prefixed_and_wrapped_state_dict_loads(tmp_path):
    src = _source(2)
    torch.save({"model": {"backbone." + k: v for k, v in src.state_dict().items()}}, tmp_path / "ssl.pth")
    model, report = create_backbone(ModelConfig(name="resnet10t", pretrained=str(tmp_path / "ssl.pth")), 1)
    _assert_backbone_equal(model, src)
    assert report["unexpected"] == 0


def test_hugging_face_format_vit_is_refused_not_silently_random(tmp_path):
    from transformers import ViTConfig, ViTModel

    hf = ViTModel(ViTConfig(hidden_size=192, num_hidden_layers=2, num_attention_heads=3, intermediate_size=768,
                            image_size=32, patch_size=16))
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(tmp_path / "model.safetensors"))
    cfg = ModelConfig(name="vit_tiny_patch16_224", kwargs={"img_size": 32, "depth": 2}, pretrained=str(tmp_path))
    with pytest.raises(WeightsError, match=r"model.safetensors: weights do not fit 'vit_tiny_patch16_224': "
                                           r"1 of 30 backbone tensors load") as err:
        create_backbone(cfg, 1)
    assert "\n" not in str(err.value) and "embeddings" in str(err.value)  # HF keys: only cls_token matches after "embeddings."


def test_half_loaded_weights_are_refused(tmp_path):
    src = _source(3)
    state = src.state_dict()
    kept = dict(list(state.items())[: len(state) // 3])
    save_file(kept, str(tmp_path / "partial.safetensors"))
    with pytest.raises(WeightsError, match=r"do not fit 'resnet10t': \d+ of \d+ backbone tensors load"):
        create_backbone(ModelConfig(name="resnet10t", pretrained=str(tmp_path / "partial.safetensors")), 1)


def test_random_init_has_no_report():
    model, report = create_backbone(ModelConfig(name="resnet10t"), 1)
    assert report is None and model.fc.out_features == 1


def test_build_model_from_a_checkpoint_is_not_random_init(tmp_path):
    """D2: a checkpoint whose keys start with ``model.`` used to load nothing (timm only logged unexpected keys)."""
    from medfit.models import build_model

    src = _source(4)
    ckpt = _run_folder(tmp_path, src) / "checkpoints" / "best.ckpt"
    model = build_model(ModelConfig(name="resnet10t", pretrained=str(ckpt), in_chans=3), 1)
    _assert_backbone_equal(model, src)
