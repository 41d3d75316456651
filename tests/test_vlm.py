"""VLM classifiers: prompts, option-token scoring, LoRA training, save/reload, weights errors (tiny random LLaVA, real X-rays)."""
import shutil
from dataclasses import replace
from pathlib import Path

import medfit  # noqa: F401
import numpy as np
import pytest
import torch

from medfit.config import PreprocessConfig, VLMConfig
from medfit.data.rows import Row
from medfit.errors import ConfigError, WeightsError
from medfit.models import vlm
from medfit.models import weights as W
from medfit.preprocess import Recipe
from medfit.task import Task
from medfit.vlm.fit import prepare_for_training, train_lora
from medfit.vlm.tiny import build_tiny_vlm

CLASSES = ["NORMAL", "PNEUMONIA"]
QUESTION = "Does this chest X-ray show pneumonia?"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava", [QUESTION, "No pneumonia Pneumonia Options Answer"])


def make_cfg(tiny_dir, **kw) -> VLMConfig:
    """A VLM config; lr/grad_clip go to its optimiser section and lora_r/lora_alpha to its LoRA section."""
    base = VLMConfig()
    optim = {k: kw.pop(k) for k in ("lr", "grad_clip") if k in kw}
    lora = {k.removeprefix("lora_"): kw.pop(k) for k in ("lora_r", "lora_alpha") if k in kw}
    fields = dict(model=str(tiny_dir), question=QUESTION, options=["No pneumonia", "Pneumonia"], device="cpu",
                  class_balance=False, optim=replace(base.optim, **optim), lora=replace(base.lora, dropout=0.0, **lora))
    return replace(base, **{**fields, **kw})


@pytest.fixture(scope="module")
def xray_batch(shared_data) -> tuple[torch.Tensor, torch.Tensor]:
    """8 real paediatric chest X-rays (4 NORMAL, 4 PNEUMONIA) prepared at 28 px, RGB, in [0, 1]."""
    from medfit.preprocess import load_prepared

    root = shared_data / "chest-xray-pneumonia-224" / "train"
    files = sorted((root / "NORMAL").glob("*.jpeg"))[:4] + sorted((root / "PNEUMONIA").glob("*.jpeg"))[:4]
    images = np.stack([load_prepared(Row(str(f)), Recipe.of(PreprocessConfig(), 28, 3)) for f in files])
    return torch.from_numpy(images), torch.tensor([0] * 4 + [1] * 4)


def test_prompt_formatting_with_and_without_chat_template(tiny_dir):
    model, processor = vlm.load_vlm(make_cfg(tiny_dir))
    body = f"{QUESTION}\nOptions:\nA: No pneumonia\nB: Pneumonia"
    assert vlm.build_prompt(processor, make_cfg(tiny_dir), CLASSES) == f"USER: <image>\n{body}\nASSISTANT: Answer:"
    plain = make_cfg(tiny_dir, chat_template=False, prompt="{options}\n{question}", answer_prefix="", option_letters=["1", "2"])
    assert vlm.build_prompt(processor, plain, CLASSES) == f"<image>\n1: No pneumonia\n2: Pneumonia\n{QUESTION}\n"
    assert vlm.option_continuations(make_cfg(tiny_dir), CLASSES) == [" A", " B"]
    assert vlm.option_continuations(make_cfg(tiny_dir, answer="text"), CLASSES) == [" No pneumonia", " Pneumonia"]
    assert vlm.prompt_body(make_cfg(tiny_dir, options=[]), CLASSES).endswith("A: NORMAL\nB: PNEUMONIA")
    with pytest.raises(ConfigError, match="vlm.options"):
        vlm.prompt_body(make_cfg(tiny_dir, options=["only one"]), CLASSES)
    with pytest.raises(ConfigError, match="vlm.prompt"):
        vlm.prompt_body(make_cfg(tiny_dir, prompt="{quest}"), CLASSES)
    with pytest.raises(ConfigError, match="same tokens"):  # both words unknown to the tokenizer -> identical <unk>
        vlm.VLMClassifier(model, processor, CLASSES, make_cfg(tiny_dir, answer="text", options=["zebra", "giraffe"]))


def test_option_scores_are_a_softmax_over_option_logits_at_the_answer_position(tiny_dir):
    clf = vlm.load_vlm_classifier(make_cfg(tiny_dir), CLASSES)
    assert all(len(ids) == 1 for ids in clf.option_ids)
    images = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    probs = clf.probabilities(images)
    assert probs.shape == (3, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    # independently: full logits of the prompt, last position, the two option tokens, softmax
    batch = clf.processor(text=[clf.prompt] * 3, images=vlm.images_to_pil(images), return_tensors="pt")
    with torch.no_grad():
        last = clf.model(**batch).logits[:, -1]
    expected = last[:, [ids[0] for ids in clf.option_ids]].softmax(1)
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)


def test_multi_token_options_score_summed_log_probs(tiny_dir):
    clf = vlm.load_vlm_classifier(make_cfg(tiny_dir, answer="text"), CLASSES)
    assert [len(ids) for ids in clf.option_ids] == [2, 1]  # "No pneumonia" vs "Pneumonia"
    images = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scores = clf(images)
    pil = vlm.images_to_pil(images)
    for k, (text, ids) in enumerate(zip([" No pneumonia", " Pneumonia"], clf.option_ids)):
        batch = clf.processor(text=[clf.prompt + text] * 2, images=pil, return_tensors="pt")
        with torch.no_grad():
            logp = clf.model(**batch).logits.log_softmax(-1)
        n = batch["input_ids"].shape[1]
        manual = sum(logp[:, n - len(ids) - 1 + j, t] for j, t in enumerate(ids))
        torch.testing.assert_close(scores[:, k], manual, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clf.probabilities(images).sum(1), torch.ones(2))


def test_lora_targets_language_model_by_default_and_vision_on_request(tiny_dir):
    model, _ = vlm.load_vlm(make_cfg(tiny_dir))
    lang = vlm.lora_target_modules(model, make_cfg(tiny_dir).lora.targets)
    assert lang and all("language_model" in n for n in lang) and len(lang) == 2 * 7  # 2 layers x 7 projections
    both = vlm.lora_target_modules(model, make_cfg(tiny_dir).lora.targets, include_vision=True)
    assert set(lang) < set(both) and any("vision_tower" in n for n in both)
    assert not any("lm_head" in n or "projector" in n for n in both)
    with pytest.raises(ConfigError, match="lora.targets"):
        vlm.lora_target_modules(model, ["no_such_layer"])


def test_lora_training_lowers_the_loss_on_real_xrays_and_reloads_identically(tiny_dir, xray_batch, tmp_path):
    images, labels = xray_batch
    cfg = make_cfg(tiny_dir, lr=0.02, batch_size=8, epochs=6, lora_r=4, lora_alpha=8, lora_vision=True)
    model, processor = vlm.load_vlm(cfg)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    clf = vlm.VLMClassifier(prepare_for_training(model, cfg), processor, CLASSES, cfg)
    with torch.no_grad():
        before = float(clf.eval().loss(images, labels))
    log = train_lora(clf, images, labels.numpy(), cfg, seed=0)
    clf.model.eval()
    with torch.no_grad():
        after = float(clf.loss(images, labels))
    assert len(log) == 6 and after < before - 0.05, (before, after, log)
    for name, p in clf.model.named_parameters():  # base weights untouched; only LoRA weights train
        assert p.requires_grad == ("lora_" in name)
        if "lora_" not in name:
            assert torch.equal(p, frozen[name.replace("base_model.model.", "").replace(".base_layer", "")])
    clf.model.save_pretrained(tmp_path / "adapter")
    reloaded = vlm.load_vlm_classifier(cfg, CLASSES, tmp_path / "adapter")
    assert torch.equal(reloaded.probabilities(images), clf.probabilities(images))
    base = vlm.load_vlm_classifier(cfg, CLASSES)
    assert not torch.equal(base.probabilities(images), clf.probabilities(images))


def test_gradient_accumulation_matches_one_large_batch(tiny_dir, xray_batch):
    images, labels = xray_batch
    results = []
    for batch_size, accum in [(8, 1), (4, 2)]:
        cfg = make_cfg(tiny_dir, lr=0.01, batch_size=batch_size, grad_accum_steps=accum, max_steps=1, grad_clip=0.0)
        model, processor = vlm.load_vlm(cfg)
        torch.manual_seed(0)
        clf = vlm.VLMClassifier(prepare_for_training(model, cfg), processor, CLASSES, cfg)
        log = train_lora(clf, images, labels.numpy(), cfg, seed=0)
        assert [r["images"] for r in log] == [8]
        # the gradient the single optimiser step used (kept on .grad until the next step)
        results.append({n: p.grad.clone() for n, p in clf.model.named_parameters() if p.requires_grad})
    assert results[0].keys() == results[1].keys()
    assert any(g.abs().sum() > 0 for g in results[0].values())
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], rtol=1e-4, atol=1e-7)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_dir, xray_batch):
    images, labels = xray_batch
    grads = []
    for checkpointing in (False, True):
        cfg = make_cfg(tiny_dir, gradient_checkpointing=checkpointing)
        model, processor = vlm.load_vlm(cfg)
        torch.manual_seed(0)
        clf = vlm.VLMClassifier(prepare_for_training(model, cfg), processor, CLASSES, cfg).train()
        calls = []  # the inside of a checkpointed decoder layer runs again during backward (hooks do not see it)
        act = model.model.language_model.layers[0].mlp.act_fn
        act.forward = lambda x, f=act.forward: calls.append(1) or f(x)
        for p in clf.model.parameters():  # non-zero LoRA B so every adapter gets a gradient
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(p.numel()))
        loss = clf.loss(images, labels, Task("multiclass", CLASSES).class_weights(labels.numpy()))
        loss.backward()
        assert len(calls) == (2 if checkpointing else 1)
        grads.append((loss.item(), [p.grad.clone() for p in clf.model.parameters() if p.requires_grad]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for g0, g1 in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(g0, g1, rtol=1e-4, atol=1e-7)


def test_bf16_only_where_the_hardware_supports_it(monkeypatch):
    cpu = torch.device("cpu")
    assert vlm.resolve_dtype("auto", cpu) == torch.float32
    assert vlm.resolve_dtype("32-true", cpu) == torch.float32
    with pytest.raises(ConfigError, match="vlm.precision"):
        vlm.resolve_dtype("bf16-true", cpu)
    monkeypatch.setattr(vlm, "bf16_supported", lambda device: device.type == "cuda")
    assert vlm.resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert vlm.resolve_dtype("32-true", torch.device("cuda")) == torch.float32


def test_missing_weights_are_a_clear_error(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = str(tmp_path / "hub")
    with pytest.raises(WeightsError, match=r"^hf-hub:acme/no-such-vlm: not in the HF cache .*medfit weights pull "
                                           r"hf-hub:acme/no-such-vlm --to DIR"):
        vlm.resolve_model_dir("hf-hub:acme/no-such-vlm", hub)  # the same line as model.pretrained's offline miss
    with pytest.raises(WeightsError, match=r"^acme/no-such-vlm: pretrained weights not found; set vlm.model .*"
                                           r"a Hugging Face repo is written hf-hub:acme/no-such-vlm"):
        vlm.resolve_model_dir("acme/no-such-vlm", hub)  # the bare repo id of before: one line naming the new form
    with pytest.raises(WeightsError, match="folder has no model.safetensors"):
        vlm.resolve_model_dir(str(tmp_path))
    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    shutil.copyfile(tiny_dir / "model.safetensors", weights_only / "model.safetensors")
    with pytest.raises(WeightsError, match="vlm.model must be a Hugging Face model folder with config.json .*file source"):
        vlm.resolve_model_dir(str(weights_only / "model.safetensors"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_dir / "config.json").read_text())
    shutil.copyfile(tiny_dir / "model.safetensors", broken / "model.safetensors")
    with pytest.raises(WeightsError, match="cannot load the VLM"):
        vlm.load_vlm(make_cfg(broken))
    with pytest.raises(ConfigError, match="vlm.model"):
        vlm.resolve_model_dir("")


def test_model_found_in_the_hf_cache_offline(tiny_dir, tmp_path, monkeypatch):
    """vlm.model takes the weight-source syntax: hf-hub:ORG/REPO from a (local) Hugging Face cache, the way
    `hf download` leaves it, and the folder `medfit weights pull --to` copies from there."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hub" / "models--acme--tiny-vlm"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_dir, repo / "snapshots" / commit)
    hub = str(tmp_path / "hub")
    assert vlm.resolve_model_dir("hf-hub:acme/tiny-vlm", hub) == repo / "snapshots" / commit
    clf = vlm.load_vlm_classifier(make_cfg(tiny_dir, model="hf-hub:acme/tiny-vlm", cache_dir=hub), CLASSES)
    x = torch.rand(1, 3, 28, 28)
    assert clf.probabilities(x).shape == (1, 2)
    W.pull("hf-hub:acme/tiny-vlm", tmp_path / "carried", hub)
    carried = vlm.load_vlm_classifier(make_cfg(tmp_path / "carried"), CLASSES)
    torch.testing.assert_close(carried.probabilities(x), clf.probabilities(x))
    record = vlm.resolve_vlm_weights("hf-hub:acme/tiny-vlm", hub).record()
    assert record["revision"] == commit and record["sha256"] == W.sha256_file(tiny_dir / "model.safetensors")


def test_sharded_model_folder_resolves(tiny_dir, tmp_path):
    """A model saved in shards (as MedGemma is) is a model folder too; its record hashes every shard."""
    from transformers import AutoModelForImageTextToText

    sharded = tmp_path / "sharded"
    AutoModelForImageTextToText.from_pretrained(tiny_dir).save_pretrained(sharded, max_shard_size="100KB")
    for f in tiny_dir.iterdir():
        if f.suffix != ".safetensors" and not (sharded / f.name).exists():
            shutil.copyfile(f, sharded / f.name)
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").is_file()
    record = vlm.resolve_vlm_weights(str(sharded)).record()
    assert sorted(record["files"]) == shards and record["sha256"] is None
    x = torch.rand(1, 3, 28, 28)
    torch.testing.assert_close(vlm.load_vlm_classifier(make_cfg(sharded), CLASSES).probabilities(x),
                               vlm.load_vlm_classifier(make_cfg(tiny_dir), CLASSES).probabilities(x))


def test_gemma3_family_prompt_scores_and_lora(tmp_path, xray_batch):
    """The same code path on a Gemma 3 (MedGemma's architecture): <start_of_image> prompt, token_type_ids, LoRA."""
    folder = build_tiny_vlm(tmp_path / "tiny-gemma3", [QUESTION, "No pneumonia Pneumonia Options Answer"], family="gemma3")
    cfg = make_cfg(folder, answer="text", lr=0.02, batch_size=8, epochs=4)
    clf = vlm.load_vlm_classifier(cfg, CLASSES)
    assert type(clf.model).__name__ == "Gemma3ForConditionalGeneration"
    assert clf.prompt == (f"<s><start_of_turn>user\n<start_of_image>{QUESTION}\nOptions:\nA: No pneumonia\nB: Pneumonia"
                          "<end_of_turn>\n<start_of_turn>model\nAnswer:")
    images, labels = xray_batch
    batch = clf.encode(images[:2])
    assert "token_type_ids" in batch and (batch["input_ids"] == clf.processor.tokenizer.bos_token_id).sum() == 2  # one bos each
    with torch.no_grad():
        scores = clf(images[:2])
    for k, (text, ids) in enumerate(zip([" No pneumonia", " Pneumonia"], clf.option_ids)):
        full = clf.processor(text=[clf.prompt + text] * 2, images=[[i] for i in vlm.images_to_pil(images[:2])],
                             return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            logp = clf.model(**full).logits.log_softmax(-1)
        n = full["input_ids"].shape[1]
        torch.testing.assert_close(scores[:, k], sum(logp[:, n - len(ids) - 1 + j, t] for j, t in enumerate(ids)),
                                   rtol=1e-5, atol=1e-5)
    probs = clf.probabilities(images)
    torch.testing.assert_close(probs.sum(1), torch.ones(8))
    assert probs[:, 1].std() > 1e-4  # the image moves the answer
    model, processor = vlm.load_vlm(cfg)
    torch.manual_seed(0)
    trained = vlm.VLMClassifier(prepare_for_training(model, cfg), processor, CLASSES, cfg)
    assert all("language_model" in n for n, p in trained.model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        before = float(trained.eval().loss(images, labels))
    train_lora(trained, images, labels.numpy(), cfg, seed=0)
    with torch.no_grad():
        after = float(trained.eval().loss(images, labels))
    assert after < before - 0.05, (before, after)


def test_shipped_vlm_configs_load():
    from medfit.config import load_config

    paths = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("vlm-*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        cfg = load_config(path)
        assert cfg.vlm.model and cfg.vlm.finetune in ("none", "lora") and cfg.data.task == "binary"
