"""CBAM from timm.layers at the studies' positions, and a CBAM network as the pretrained source of another."""
import pytest
import torch
from safetensors.torch import save_file
from timm.layers.cbam import CbamModule

from medfit.config import ModelConfig
from medfit.models import build_model
from medfit.models.cbam import unwrap_cbam
from medfit.models.registry import load_report


def test_unwrap_cbam_splits_the_wrapper_keys():
    state = {"stages.0.stage.conv.weight": 1, "stages.0.cbam.channel.fc1.weight": 2, "head.fc.weight": 3,
             "blocks.5.stage.0.bn.weight": 4, "blocks.5.cbam.spatial.conv.conv.weight": 5, "stem.stage.w": 6}
    plain, cbam = unwrap_cbam(state)
    assert plain == {"stages.0.conv.weight": 1, "head.fc.weight": 3, "blocks.5.0.bn.weight": 4, "stem.stage.w": 6}
    assert cbam == {"stages.0.cbam.channel.fc1.weight": 2, "blocks.5.cbam.spatial.conv.conv.weight": 5}


@pytest.mark.parametrize("name", ["convnext_atto", "mobilenetv3_small_050"])
def test_a_cbam_network_is_the_pretrained_source_of_the_next_stage(tmp_path, name):
    torch.manual_seed(0)
    first = build_model(ModelConfig(name=name, cbam=["default"]), 1)
    assert any(isinstance(m, CbamModule) for m in first.modules())  # timm's CBAM module, inserted by medfit
    with torch.no_grad():
        for n, p in first.named_parameters():
            if ".cbam." in n:
                p.add_(torch.randn_like(p))  # trained CBAM weights differ from a fresh init
    path = tmp_path / "stage1.safetensors"
    save_file({k: v.contiguous() for k, v in first.state_dict().items()}, str(path))
    second = build_model(ModelConfig(name=name, cbam=["default"], pretrained=str(path)), 1)
    report = load_report(second)
    cbam = [k for k in first.state_dict() if ".cbam." in k]
    assert report["cbam_tensors"] == report["cbam_loaded"] == len(cbam) > 0
    assert report["matched"] == report["backbone_tensors"]
    own = second.state_dict()
    heads = {k for k in own if k.startswith(("head.fc", "classifier"))}
    assert all(torch.equal(own[k], v) for k, v in first.state_dict().items() if k not in heads)
    plain = build_model(ModelConfig(name=name, pretrained=str(path)), 1)  # no CBAM asked: the backbone alone loads
    assert load_report(plain)["matched"] == load_report(plain)["backbone_tensors"]
    assert "cbam_loaded" not in load_report(plain)
