"""open_clip models from a local folder (BiomedCLIP layout, tiny random weights): loading, LoRA backbone, zero-shot."""
import dataclasses
import json
import shutil

import open_clip
import pandas as pd
import pytest
import torch
from transformers import BertConfig

from medfit.cli import main
from medfit.commands.pipeline import finish_run
from medfit.commands.zeroshot import zero_shot_run
from medfit.config import ClipConfig, ExperimentConfig, LoraConfig, ModelConfig, updated
from medfit.errors import WeightsError
from medfit.models import build_model, count_parameters
from medfit.models import weights as W
from medfit.models.clip import BIOMEDCLIP, load_open_clip
from medfit.models.registry import load_report
from medfit.models.zeroshot import build_zero_shot, class_prompts
from medfit.task import Task

torch.set_num_threads(1)
BERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "medical", "image", "showing", "normal", "lungs",
         "pneumonia", "chest", "x", "-", "ray", "of", ".", "no", "opacity"]


def make_tiny_biomedclip(folder, trunk: str = "vit_tiny_patch16_224"):
    """A BiomedCLIP-shaped open_clip folder: timm ViT image tower (``trunk``) + BERT text tower named by hub id,
    random weights."""
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=64).save_pretrained(folder)
    text_cfg = {"hf_model_name": BERT, "hf_tokenizer_name": BERT, "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    config = {"model_cfg": {"embed_dim": 16, "text_cfg": text_cfg,
                            "vision_cfg": {"timm_model_name": trunk, "timm_model_pretrained": False,
                                           "timm_pool": "", "timm_proj": "linear", "image_size": 224}},
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    local_text = {**text_cfg, "hf_model_name": str(folder), "hf_tokenizer_name": str(folder), "hf_model_pretrained": False}
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, text_cfg=local_text)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return model.state_dict()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "tiny-biomedclip"
    return folder, make_tiny_biomedclip(folder)


def test_local_folder_loads_past_the_biomedbert_autoconfig_trap(tiny_clip):
    folder, state = tiny_clip
    model, tokenizer = load_open_clip(f"local-dir:{folder}")  # config names the hub BERT; no network, no cache
    loaded = model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    ids = tokenizer(["a chest x-ray showing pneumonia ."])
    assert ids.shape == (1, 16) and (ids[0, 1:8] > 4).all()  # real word pieces, not [UNK]


def test_missing_files_are_named(tiny_clip, tmp_path):
    folder, _ = tiny_clip
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"lacks its config.json .*hf.co/microsoft/BiomedNLP"):
        load_open_clip(f"local-dir:{partial}")
    (partial / "open_clip_pytorch_model.bin").unlink()
    with pytest.raises(WeightsError, match=r"missing .*open_clip_pytorch_model.bin"):
        load_open_clip(f"local-dir:{partial}")
    with pytest.raises(WeightsError, match="not in the HF cache"):
        load_open_clip("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", str(tmp_path / "hub"))


def test_clip_image_encoder_as_lora_backbone(tiny_clip):
    folder, state = tiny_clip
    cfg = ModelConfig(kind="open_clip", clip=ClipConfig(source=f"local-dir:{folder}", image_size=32), finetune="lora",
                      lora=LoraConfig(r=4))
    model = build_model(cfg, 1)
    trainable, total = count_parameters(model)
    adapted = [n for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert adapted and all(".trunk.blocks." in n or ".head.proj." in n for n in adapted)
    assert trainable < 0.2 * total
    trunk = model.base_model.model.visual.trunk
    torch.testing.assert_close(trunk.blocks[0].attn.qkv.base_layer.weight, state["visual.trunk.blocks.0.attn.qkv.weight"])
    assert model.base_model.model.prepare.size == (32, 32) and trunk.pos_embed.shape[1] == 1 + 4  # resampled
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 1)


def test_zero_shot_follows_the_prompts(tiny_clip):
    folder, _ = tiny_clip
    prompts = class_prompts(["NORMAL", "PNEUMONIA"], {"NORMAL": ["normal lungs", "no opacity"]}, ["a chest x-ray of {}."])
    assert prompts == [["a chest x-ray of normal lungs.", "a chest x-ray of no opacity."], ["a chest x-ray of PNEUMONIA."]]
    clip = ClipConfig(source=f"local-dir:{folder}", prompts={"NORMAL": "normal lungs", "PNEUMONIA": "pneumonia"},
                      image_size=32)
    binary, three_classes = Task("binary", ("NORMAL", "PNEUMONIA")), Task("multiclass", ("NORMAL", "PNEUMONIA", "opacity"))
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        p = torch.sigmoid(build_zero_shot(ModelConfig(kind="clip_zero_shot", clip=clip), binary)(x))
        clip = dataclasses.replace(clip, prompts={"NORMAL": "pneumonia", "PNEUMONIA": "normal lungs"})
        swapped = torch.sigmoid(build_zero_shot(ModelConfig(kind="clip_zero_shot", clip=clip), binary)(x))
        three = build_zero_shot(ModelConfig(kind="clip_zero_shot", clip=clip), three_classes)(x)
    assert (p - 0.5).abs().max() > 1e-4  # the prompts matter
    torch.testing.assert_close(swapped, 1 - p, atol=1e-5, rtol=0)
    assert three.shape == (4, 3)


def test_zero_shot_run_is_scored_like_any_run(tiny_clip, shared_data, tmp_path):
    folder, _ = tiny_clip
    cfg = updated(ExperimentConfig(), {
        "name": "zs", "output_dir": str(tmp_path), "data.source": "medmnist",
        "data.root": "pneumoniamnist/pneumoniamnist_reconstructed.npz", "data.class_names": ["normal", "pneumonia"],
        "data.image_size": 28, "data.limit_per_split": 16, "train.progress_bar": False, "evaluate.bootstrap": 20,
        "model.kind": "clip_zero_shot", "model.clip.source": f"local-dir:{folder}", "model.clip.image_size": 32})
    run_dir = finish_run(zero_shot_run(cfg, str(shared_data))).path
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert {"image", "patient_id", "split", "label", "prob"} <= set(pred.columns)
    assert set(pred["split"]) == {"val", "test"} and pred["prob"].between(0, 1).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["splits"]["test"]["auc"] <= 1
    assert metrics["parameters"]["trainable"] == 0 and metrics["parameters"]["total"] > 0
    digest = W.sha256_file(folder / "open_clip_pytorch_model.bin")
    assert metrics["pretrained"]["weights"]["sha256"] == digest  # the weight record, as timm runs keep it
    assert f">{digest[:12]} (weight file" in (run_dir / "report.html").read_text()
    # The run reloads like a trained one: `medfit predict` reproduces its test probabilities.
    out = tmp_path / "again.csv"
    assert main(["predict", str(run_dir), "--split", "test", "--out", str(out)]) == 0
    again = pd.read_csv(out)["prob"].to_numpy()
    assert abs(again - pred.query("split == 'test'")["prob"].to_numpy()).max() < 1e-5


def test_clip_source_takes_the_one_weight_source_syntax(tiny_clip, tmp_path, monkeypatch):
    """model.clip.source reads what model.pretrained reads: a plain folder, an hf-hub: repo from the HF cache, and the
    folder `medfit weights pull --to` writes (BiomedCLIP's BERT config and vocabulary pulled beside it)."""
    from test_models_weights import put_in_hub

    folder, state = tiny_clip
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    put_in_hub(hub, BIOMEDCLIP.removeprefix("hf-hub:"), folder)
    text = tmp_path / "bert"
    text.mkdir()
    for f in ("config.json", "vocab.txt"):
        shutil.copyfile(folder / f, text / f)
    put_in_hub(hub, BERT, text)
    W.pull("biomedclip", tmp_path / "carried")
    for source in (str(folder), BIOMEDCLIP, str(tmp_path / "carried")):
        loaded = load_open_clip(source)[0].state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items()), source
    with pytest.raises(WeightsError, match=r"^hf-hub:acme/none: not in the HF cache .*medfit weights pull "
                                           r"hf-hub:acme/none --to DIR"):
        load_open_clip("hf-hub:acme/none")
    with pytest.raises(WeightsError, match=r"no-such-folder: pretrained weights not found; set model.clip.source"):
        load_open_clip(str(tmp_path / "no-such-folder"))


def test_open_clip_network_carries_its_weight_record(tiny_clip):
    """The open_clip builder hands train_info the same record as timm: source, revision, sha256, normalisation."""
    folder, _ = tiny_clip
    cfg = ModelConfig(kind="open_clip", clip=ClipConfig(source=str(folder), image_size=32), finetune="lora",
                      lora=LoraConfig(r=4))
    report = load_report(build_model(cfg, 1))
    w = report["weights"]
    assert (w["source"], w["kind"]) == (str(folder), "folder")
    assert w["sha256"] == W.sha256_file(folder / "open_clip_pytorch_model.bin")
    assert w["normalisation"]["mean"] == [0.48145466, 0.4578275, 0.40821073]
    assert w["normalisation"]["from"] == "open_clip preprocess_cfg"
    assert report["tensors"] == len(state_of(folder)) and "open_clip" in report["loaded_by"]
    assert load_report(build_model(cfg, 1, load_pretrained=False)) is None


def state_of(folder):
    return torch.load(folder / "open_clip_pytorch_model.bin", weights_only=True)
