"""The hub rule: medfit contacts no hub (no DNS, no connection) unless the config names a hub source; a hub source on an
offline machine, or an unreachable hub, is one line."""
import json
import socket

import huggingface_hub.constants
import pytest

from medfit.cli import main

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


@pytest.fixture()
def no_network(monkeypatch):
    """Every DNS lookup and connection attempt is recorded and fails."""
    attempts = []

    def refuse(what):
        def call(*args, **kwargs):
            attempts.append((what, args[1:] if what.startswith("socket.") else args))
            raise OSError(f"network blocked by the test ({what})")
        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    return attempts


def tiny_config(tmp_path, shared_data) -> str:
    cfg = tmp_path / "plain.yaml"
    cfg.write_text(f"""
name: plain
output_dir: {tmp_path / 'runs'}
data: {{source: medmnist, root: {shared_data / NPZ}, image_size: 28, limit_per_split: 64}}
model: {{name: resnet10t}}
train: {{epochs: 1, batch_size: 32, progress_bar: false}}
evaluate: {{bootstrap: 20}}
audit: {{dedupe: true, near_duplicates: false}}
""")
    return str(cfg)


def test_a_plain_config_trains_evaluates_and_reports_without_any_network_call(shared_data, tmp_path, monkeypatch,
                                                                               no_network):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the rule must hold without the offline switch
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert main(["train", tiny_config(tmp_path, shared_data)]) == 0  # with the default MLflow logger (local SQLite)
    assert no_network == []
    metrics = json.loads((tmp_path / "runs" / "plain" / "metrics.json").read_text())
    assert metrics["splits"]["test"]["n"] == 64 and (tmp_path / "runs" / "plain" / "report.html").is_file()


@pytest.mark.parametrize("offline", ["1", None])
def test_a_hub_source_offline_or_unreachable_is_one_line(shared_data, tmp_path, monkeypatch, capsys, no_network,
                                                         offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    else:  # online, the hub unreachable (huggingface_hub read HF_HUB_OFFLINE=1 of conftest when it was imported)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code = main(["train", tiny_config(tmp_path, shared_data), "--set", "model.name=hf-hub:timm/resnet18.a1_in1k"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: hf-hub:timm/resnet18.a1_in1k"), err
    assert (no_network == []) == bool(offline)  # offline: not even a DNS lookup
    assert not (tmp_path / "runs").exists()
