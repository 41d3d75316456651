"""Weight sources without network: a Hugging Face cache laid out as huggingface_hub writes it, with tiny weights."""
import errno
import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import httpx2
import pytest
import timm
import torch
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from medfit.config import ModelConfig
from medfit.errors import WeightsError
from medfit.models import weights as W
from medfit.models.backbones import create_backbone

torch.set_num_threads(1)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TIMM_TAG = "resnet10t.c3_in1k"  # a real timm tag whose pretrained_cfg names the repo timm/resnet10t.c3_in1k


def put_in_hub(cache: Path, repo: str, folder: Path, commit: str = COMMIT) -> Path:
    """Lay a folder out as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/<name> -> ../../blobs, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for f in sorted(folder.iterdir()):
        blob = root / "blobs" / W.sha256_file(f)
        shutil.copyfile(f, blob)
        (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty HF cache, offline."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def connects(monkeypatch):
    """Every name lookup / socket connection attempt (each one fails); tests assert there were none."""
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test")

    def no_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "no name lookups in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    return attempts


@pytest.fixture
def timm_repo(hub, tmp_path):
    """timm/resnet10t.c3_in1k in the cache, written by timm's own save_for_hf (config.json + model.safetensors)."""
    torch.manual_seed(0)
    src = timm.create_model(TIMM_TAG)
    timm.models.save_for_hf(src, str(tmp_path / "export"), safe_serialization=True)
    return put_in_hub(hub, f"timm/{TIMM_TAG}", tmp_path / "export"), src


def test_timm_name_resolves_offline_from_the_cache(timm_repo, connects):
    snapshot, src = timm_repo
    resolved = W.resolve_weights(f"timm:{TIMM_TAG}")
    assert resolved.path == snapshot / "model.safetensors" and resolved.revision == COMMIT
    model, report = create_backbone(ModelConfig(name="resnet10t", pretrained=f"timm:{TIMM_TAG}", in_chans=1), 2)
    torch.testing.assert_close(model.layer4[0].conv2.weight, src.layer4[0].conv2.weight)
    torch.testing.assert_close(model.conv1[0].weight, src.conv1[0].weight.sum(dim=1, keepdim=True))
    assert report["matched"] == report["backbone_tensors"] == len(src.state_dict()) - 2
    record = report["weights"]
    assert record["repo"] == f"timm/{TIMM_TAG}" and record["revision"] == COMMIT
    assert record["sha256"] == W.sha256_file(snapshot / "model.safetensors")
    norm = record["normalisation"]
    assert norm["mean"] == [0.485, 0.456, 0.406] and norm["size"] == 176 and norm["from"].startswith("timm")
    assert connects == []


def test_hf_hub_model_name_builds_the_repos_architecture_offline(timm_repo, connects):
    """model.name: hf-hub:timm/... used to reach the network and die with a traceback."""
    _, src = timm_repo
    model, report = create_backbone(ModelConfig(name=f"hf-hub:timm/{TIMM_TAG}", in_chans=3), 1)
    assert type(model).__name__ == "ResNet" and model.fc.out_features == 1
    torch.testing.assert_close(model.conv1[0].weight, src.conv1[0].weight)
    assert report["weights"]["source"] == f"hf-hub:timm/{TIMM_TAG}"
    random_init, none = create_backbone(ModelConfig(name=f"hf-hub:timm/{TIMM_TAG}"), 1, load_pretrained=False)
    assert none is None and not torch.equal(random_init.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    assert connects == []


def test_offline_miss_is_one_line_without_network(hub, connects):
    with pytest.raises(WeightsError) as err:
        W.resolve_weights("hf-hub:acme/not-cached")
    line = str(err.value)
    assert "\n" not in line and line.startswith("hf-hub:acme/not-cached: not in the HF cache")
    assert str(hub) in line and "medfit weights pull hf-hub:acme/not-cached --to DIR" in line
    with pytest.raises(WeightsError, match=f"timm:{TIMM_TAG}: not in the HF cache"):
        create_backbone(ModelConfig(name="resnet10t", pretrained=f"timm:{TIMM_TAG}"), 1)
    assert connects == []


@pytest.mark.timeout(60)  # a hang guard: huggingface_hub waits forever unless given a deadline
def test_online_without_a_connection_is_one_line_quickly(hub, connects, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # it is read once, at import
    with pytest.raises(WeightsError) as err:
        W.resolve_weights("hf-hub:acme/tiny")
    line = str(err.value)
    assert "\n" not in line and "cannot reach the Hugging Face Hub (ConnectError" in line and str(hub) in line
    assert connects  # it did try (and nothing hung)


def _http_error(cls, status, code):
    request = httpx2.Request("GET", "https://huggingface.co/api/models/acme/x")
    return cls("boom", response=httpx2.Response(status, request=request, headers={"X-Error-Code": code}))


@pytest.mark.parametrize("exc,expected", [
    (_http_error(GatedRepoError, 403, "GatedRepo"), "gated model; accept its terms at https://huggingface.co/acme/x"),
    (_http_error(RepositoryNotFoundError, 404, "RepoNotFound"), "repository 'acme/x' not found on the Hub (404"),
    (OSError(errno.ENOSPC, "No space left on device"), "disk full while downloading into /cache"),
    (httpx2.ConnectTimeout("timed out"), "cannot reach the Hugging Face Hub (ConnectTimeout: timed out)"),
])
def test_hub_failures_name_source_cause_and_fix(exc, expected):
    line = str(W.hub_error(exc, "hf-hub:acme/x", "acme/x", Path("/cache")))
    assert line.startswith("hf-hub:acme/x: ") and expected in line and "\n" not in line


def test_registry_timm_entries_match_timms_pretrained_cfg():
    entries = W.load_registry()
    assert {e["loader"] for e in entries} == {"timm", "open_clip", "transformers", "torchxrayvision"}
    for e in entries:
        assert {"name", "source", "loader", "licence", "size_mb", "channels", "size", "mean", "std",
                "one_channel", "use"} <= set(e), e["name"]
        assert len(e["mean"]) == len(e["std"]) == e["channels"], e["name"]
        if e["loader"] != "timm":
            continue
        cfg = timm.models.get_pretrained_cfg(e["source"].removeprefix("timm:")).to_dict()
        assert (cfg["license"], cfg["input_size"][-1]) == (e["licence"], e["size"]), e["name"]
        assert list(cfg["mean"]) == e["mean"] and list(cfg["std"]) == e["std"], e["name"]
        with torch.device("meta"):
            params = sum(t.numel() for t in timm.create_model(e["source"].removeprefix("timm:")).state_dict().values())
        assert abs(params * 4 / 1e6 - e["size_mb"]) <= 0.05 * e["size_mb"], e["name"]  # fp32 safetensors


# --- each registry loader on a small stand-in in the real layout ----------------------------------------------------

def test_timm_loader(timm_repo, connects):
    entry = {**W.registry_entry("resnet18"), "source": f"timm:{TIMM_TAG}"}  # resnet18's loader, a smaller net
    model = W.load_entry(entry)
    assert model.medfit_load_report["matched"] == model.medfit_load_report["backbone_tensors"]
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 512) and connects == []


def test_open_clip_loader_biomedclip_layout(hub, tmp_path, connects):
    from test_models_clip import BERT, make_tiny_biomedclip

    entry = W.registry_entry("biomedclip")
    state = make_tiny_biomedclip(tmp_path / "clip")
    put_in_hub(hub, entry["source"].removeprefix("hf-hub:"), tmp_path / "clip")
    text = tmp_path / "bert"
    text.mkdir()
    for f in ("config.json", "vocab.txt"):
        shutil.copyfile(tmp_path / "clip" / f, text / f)
    put_in_hub(hub, BERT, text)
    model = W.load_entry(entry)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    norm = W.resolve_weights(entry["source"]).record()["normalisation"]
    assert norm["mean"] == entry["mean"] and norm["from"] == "open_clip preprocess_cfg" and connects == []


def test_transformers_loader_rad_dino_layout(hub, tmp_path, connects):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    entry = W.registry_entry("rad-dino")
    torch.manual_seed(0)
    tiny = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=28, patch_size=14))
    tiny.save_pretrained(tmp_path / "rad-dino")
    BitImageProcessor(image_mean=entry["mean"], image_std=entry["std"], crop_size={"height": 518, "width": 518},
                      size={"shortest_edge": 518}).save_pretrained(tmp_path / "rad-dino")
    put_in_hub(hub, "microsoft/rad-dino", tmp_path / "rad-dino")
    model = W.load_entry(entry)
    assert type(model).__name__ == "Dinov2Model"
    assert torch.equal(model.embeddings.cls_token, tiny.embeddings.cls_token)
    norm = W.resolve_weights(entry["source"]).record()["normalisation"]
    assert (norm["mean"], norm["std"], norm["size"]) == (entry["mean"], entry["std"], 518) and connects == []


def test_transformers_loader_medgemma_layout(hub, tmp_path, connects):
    from medfit.vlm.tiny import build_tiny_vlm

    entry = W.registry_entry("medgemma-4b")
    folder = build_tiny_vlm(tmp_path / "medgemma", ["x"], family="gemma3")
    put_in_hub(hub, "google/medgemma-4b-it", folder)
    model = W.load_entry(entry)
    assert type(model).__name__ == "Gemma3ForConditionalGeneration" and connects == []


def test_torchxrayvision_loader_reads_the_pickled_release_safely(tmp_path, monkeypatch, connects):
    import torchxrayvision as xrv

    monkeypatch.setenv("HOME", str(tmp_path))  # torchxrayvision's cache is ~/.torchxrayvision/models_data
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = W.registry_entry("torchxrayvision-densenet121")
    name = entry["source"].removeprefix("torchxrayvision:")
    release = Path(xrv.utils.get_cache_dir()) / Path(xrv.models.model_urls[name]["weights_url"]).name
    release.parent.mkdir(parents=True)
    torch.manual_seed(0)
    src = xrv.models.DenseNet(num_classes=18)
    torch.save(src, release)  # the release layout: a whole pickled module, not a state dict
    model = W.load_entry(entry)
    assert torch.equal(model.features.conv0.weight, src.features.conv0.weight) and len(model.pathologies) == 18
    # the same file trains a timm densenet121 natively in one channel
    net, report = create_backbone(ModelConfig(name="densenet121", in_chans=1, pretrained=entry["source"]), 1)
    assert torch.equal(net.features.denseblock4.denselayer16.conv2.weight,
                       src.features.denseblock4.denselayer16.conv2.weight)
    assert report["mismatched"] == 0 and report["weights"]["normalisation"]["std"] == [1 / 2048]
    assert connects == []


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="evil.pth: not a tensor file.*safetensors"):
        W.read_state_dict(tmp_path / "evil.pth")


# --- online, against a stand-in Hub on 127.0.0.1 (HF_ENDPOINT) ------------------------------------------------------

class FakeHub(http.server.BaseHTTPRequestHandler):
    """The three Hub calls medfit makes: model info (file list), HEAD and GET of a file; plus 404 and gated answers."""

    repos: dict = {}  # repo -> {file name: bytes}
    gated = ("acme/gated",)

    def log_message(self, *args):
        pass

    def _answer(self, head: bool):
        path = self.path.split("?")[0]
        repo = next((r for r in self.repos if path.startswith((f"/api/models/{r}", f"/{r}/resolve/main/"))), None)
        if any(path.startswith(f"/api/models/{g}") for g in self.gated):
            return self._send(403, b"{}", {"X-Error-Code": "GatedRepo"}, head)
        if repo is None:
            return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)
        files = self.repos[repo]
        if path.startswith("/api/"):
            info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head)
        body = files[path.rsplit("/", 1)[1]]
        self._send(200, body, {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(body).hexdigest()}"'}, head)

    def _send(self, code, body, headers, head):
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self):
        self._answer(head=False)

    def do_HEAD(self):
        self._answer(head=True)


@pytest.fixture
def fake_hub(hub, tmp_path, monkeypatch):
    """Online, HF_ENDPOINT at a loopback server holding acme/resnet10t (timm's save_for_hf files + a .bin copy)."""
    import huggingface_hub.constants

    torch.manual_seed(1)
    src = timm.create_model("resnet10t")
    timm.models.save_for_hf(src, str(tmp_path / "export"), safe_serialization="both")
    files = {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()}
    FakeHub.repos = {"acme/resnet10t": {**files, "README.md": b"# card"}}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, at import
    yield src
    server.shutdown()


def test_online_pull_fetches_one_weight_format_then_works_offline(fake_hub, hub, tmp_path, monkeypatch):
    assert set(FakeHub.repos["acme/resnet10t"]) == {"config.json", "model.safetensors", "pytorch_model.bin", "README.md"}
    record = W.pull("hf-hub:acme/resnet10t", tmp_path / "copy")
    assert set(record["files"]) == {"config.json", "model.safetensors"} and record["revision"] == COMMIT
    snapshot = hub / "models--acme--resnet10t" / "snapshots" / COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]  # no .bin, no card
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, report = create_backbone(ModelConfig(name="hf-hub:acme/resnet10t"), 1)
    torch.testing.assert_close(model.layer2[0].conv1.weight, fake_hub.layer2[0].conv1.weight)
    assert report["weights"]["revision"] == COMMIT


@pytest.mark.parametrize("repo,expected", [
    ("acme/gated", "hf-hub:acme/gated: gated model; accept its terms at https://huggingface.co/acme/gated"),
    ("acme/typo", "hf-hub:acme/typo: repository 'acme/typo' not found on the Hub (404"),
])
def test_online_hub_refusals_are_one_line(fake_hub, repo, expected):
    with pytest.raises(WeightsError) as err:
        W.resolve_weights(f"hf-hub:{repo}")
    assert str(err.value).startswith(expected) and "HF_TOKEN" in str(err.value) and "\n" not in str(err.value)
