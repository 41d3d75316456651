"""Fusion members that are study runs (2.5D, slice set) are rebuilt with their own architecture and weights."""
import pytest
import torch

from medfit.config import ExperimentConfig, config_from_dict, updated
from medfit.errors import ConfigError
from medfit.models import build_network, load_network
from medfit.models.finetune import merge_lora
from medfit.models.volume_models import GatedAttentionMIL
from medfit.run_folder import RunFolder

torch.set_num_threads(1)


def fake_run(root, name: str, volume: dict, model: dict | None = None) -> tuple[RunFolder, torch.nn.Module]:
    """A run folder as training leaves it: its config and a checkpoint with ``model.`` keys."""
    cfg = config_from_dict({"name": name, "output_dir": str(root), "data": {"image_size": 32, "class_names": ["a", "b"]},
                            "model": model or {"name": "resnet10t"}, "volume": volume})
    run = RunFolder.of(root, name)
    run.write_config(cfg)
    torch.manual_seed(len(name))
    net = build_network(cfg, 1)
    run.checkpoints.mkdir()
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}}, run.checkpoint("best"))
    return run, net


def fusion_config(root, volume: dict, members: list[dict]) -> ExperimentConfig:
    return config_from_dict({"name": "fusion", "output_dir": str(root), "data": {"image_size": 32},
                             "model": {"kind": "fusion", "fusion": {"dim": 16, "hidden": 8, "members": members}},
                             "volume": volume})


def test_fusion_of_a_25d_run_keeps_its_neighbour_channels_and_weights(tmp_path):
    volume = {"mode": "2.5d", "neighbours": 1, "key_slice": "centre"}
    run, net = fake_run(tmp_path, "run25d", volume)
    cfg = fusion_config(tmp_path, volume, [{"run": str(run.path)}, {"name": "resnet10t"}])
    fusion = build_network(cfg, 1)
    member = fusion.members[0]
    assert member.conv1[0].weight.shape[1] == 3  # key slice +- 1 as channels, like the 2.5D run
    torch.testing.assert_close(member.conv1[0].weight, net.conv1[0].weight)
    assert fusion.members[1].conv1[0].weight.shape[1] == 3  # a named member takes the same input
    assert fusion(torch.rand(2, 3, 32, 32)).shape == (2, 1)


def test_fusion_of_a_slice_set_run_is_its_attention_pooled_network(tmp_path):
    volume = {"mode": "slice_set", "slices": 4}
    runs = [fake_run(tmp_path, f"mil{i}", volume) for i in range(2)]
    cfg = fusion_config(tmp_path, volume, [{"run": str(r.path), "freeze": i == 0} for i, (r, _) in enumerate(runs)])
    fusion = build_network(cfg, 1)
    assert all(isinstance(m, GatedAttentionMIL) for m in fusion.members)
    for member, (_, net) in zip(fusion.members, runs):
        torch.testing.assert_close(member.encoder.conv1[0].weight, net.encoder.conv1[0].weight)
        torch.testing.assert_close(member.attention_w.weight, net.attention_w.weight)
    x = torch.rand(2, 4, 1, 32, 32)
    assert fusion(x).shape == (2, 1)
    # the fusion run itself reloads to the same outputs
    run = RunFolder.of(tmp_path, "fusion")
    run.write_config(updated(cfg, {"data.class_names": ["a", "b"]}))
    run.checkpoints.mkdir()
    torch.save({"state_dict": {"model." + k: v for k, v in fusion.state_dict().items()}}, run.checkpoint("best"))
    torch.testing.assert_close(load_network(run)(x), merge_lora(fusion).eval()(x))


def test_a_member_of_another_volume_mode_is_refused(tmp_path):
    run, _ = fake_run(tmp_path, "plain", {"mode": "slice"})
    cfg = fusion_config(tmp_path, {"mode": "2.5d", "neighbours": 1}, [{"run": str(run.path)}, {"name": "resnet10t"}])
    with pytest.raises(ConfigError, match="volume.mode 'slice'.*the fusion runs in '2.5d'"):
        build_network(cfg, 1)
