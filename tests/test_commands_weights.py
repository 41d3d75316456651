"""``medfit weights list | pull | verify`` on a Hugging Face cache laid out as huggingface_hub writes it (no network)."""
import argparse
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from medfit.commands import weights as weights_verb
from medfit.config import ExperimentConfig, ModelConfig, config_to_yaml, updated
from medfit.errors import WeightsError
from medfit.models import weights as W
from medfit.models.backbones import create_backbone
from test_models_weights import COMMIT, TIMM_TAG, hub, timm_repo  # noqa: F401  (fixtures)

torch.set_num_threads(1)


def weights_cli(argv: list[str]) -> int:
    """``medfit weights ARGV`` through the verb module (the lead registers it in medfit.cli)."""
    parser = argparse.ArgumentParser(prog="medfit weights")
    weights_verb.add_arguments(parser)
    return weights_verb.run(parser.parse_args(argv))


def test_pull_to_folder_then_pretrained_folder_gives_identical_tensors(timm_repo, tmp_path, capsys):
    snapshot, src = timm_repo
    out = tmp_path / "airgap" / "resnet10t"
    assert weights_cli(["pull", f"timm:{TIMM_TAG}", "--to", str(out)]) == 0
    manifest = json.loads((out / W.MANIFEST).read_text())
    assert manifest["revision"] == COMMIT and set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert manifest["files"]["model.safetensors"] == W.sha256_file(snapshot / "model.safetensors")
    from_dir, _ = create_backbone(ModelConfig(name="resnet10t", pretrained=str(out), in_chans=1), 2)
    from_hub, report = create_backbone(ModelConfig(name="resnet10t", pretrained=f"timm:{TIMM_TAG}", in_chans=1), 2)
    backbone = [k for k in from_hub.state_dict() if not k.startswith("fc.")]
    assert all(torch.equal(from_dir.state_dict()[k], from_hub.state_dict()[k]) for k in backbone)
    assert W.resolve_weights(str(out)).record()["normalisation"] == report["weights"]["normalisation"]

    assert weights_cli(["verify", str(out)]) == 0
    assert "2 files match" in capsys.readouterr().out
    tensors = load_file(str(out / "model.safetensors"))
    tensors["fc.bias"] += 1  # one changed number
    save_file(tensors, str(out / "model.safetensors"))
    with pytest.raises(WeightsError, match="1 of 2 files changed or missing .model.safetensors."):
        weights_cli(["verify", str(out)])
    assert "changed  model.safetensors" in capsys.readouterr().out


def test_pull_config_names_every_source(timm_repo, tmp_path):
    cfg = updated(ExperimentConfig(), {"name": "x", "output_dir": str(tmp_path), "model.name": "resnet10t",
                                       "model.pretrained": f"timm:{TIMM_TAG}", "vlm.model": "hf-hub:google/medgemma-4b-it"})
    assert weights_verb.config_sources(cfg) == [f"timm:{TIMM_TAG}", "hf-hub:google/medgemma-4b-it"]
    cfg = updated(cfg, {"vlm.model": ""})
    (tmp_path / "c.yaml").write_text(config_to_yaml(cfg))
    assert weights_cli(["pull", "--config", str(tmp_path / "c.yaml"), "--to", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / f"timm_{TIMM_TAG}" / "model.safetensors").is_file()


def test_pull_needs_exactly_one_of_source_and_config():
    with pytest.raises(WeightsError, match="give a SOURCE or --config CONFIG"):
        weights_cli(["pull"])


def test_weights_list_prints_every_entry(capsys):
    assert weights_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert all(e["name"] in out for e in W.load_registry())
    assert "hf-hub:google/medgemma-4b-it (gated)" in out and "0.485,0.456,0.406 / 0.229,0.224,0.225" in out
    assert len(out.splitlines()) == 2 + len(W.load_registry()) + 2  # header, rule, one row each, blank, hint


def test_every_registry_entrys_use_keys_load_and_name_its_source():
    """Each entry's `use:` is config keys that exist (in the schema and for the model kind they set) and that name
    the entry's source, so `medfit weights pull --config` fetches it."""
    for e in W.load_registry():
        assert isinstance(e["use"], dict) and (e["use"] or e["note"]), e["name"]
        cfg = updated(ExperimentConfig(), e["use"])  # unknown keys, or keys the kind does not read: ConfigError
        if e["use"]:
            assert e["source"] in weights_verb.config_sources(cfg), e["name"]
