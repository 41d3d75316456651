"""Vision-language models as classifiers: class probabilities from the option tokens' scores at the answer position.

The prompt lists the classes as options ("A: Normal", "B: Pneumonia"); the model's log-probability of each option's
token(s) after the answer prefix is that class's score, and a softmax over the scores gives the class probabilities.
An option of several tokens scores the sum of its tokens' log-probabilities (teacher-forced), so single- and multi-token
options are on the same scale. Any ``AutoModelForImageTextToText`` family works (Gemma 3 / MedGemma, LLaVA, PaliGemma).
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from PIL import Image
from torch import nn

from medfit.config import VLMConfig
from medfit.errors import ConfigError, WeightsError
from medfit.models.weights import ResolvedWeights, resolve_weights
from medfit.run_folder import RunFolder

# Where a model's parts live in Hugging Face VLMs (Llava, Gemma3, PaliGemma, Qwen2-VL ... in transformers 5).
LANGUAGE_PARTS = ("language_model",)
VISION_PARTS = ("vision_tower", "vision_model", "visual")


def option_letters(n: int, letters: list[str] | None = None) -> list[str]:
    """The option labels: the given ones, else A, B, C, ..."""
    if letters:
        if len(letters) != n:
            raise ConfigError(f"vlm.option_letters: {len(letters)} letters for {n} classes; give one per class")
        return list(letters)
    if n > 26:
        raise ConfigError(f"vlm: {n} classes is more than the 26 default option letters; set vlm.option_letters")
    return list(string.ascii_uppercase[:n])


def format_options(descriptions: list[str], letters: list[str]) -> str:
    """The options block of the prompt, one ``<letter>: <description>`` per line."""
    return "\n".join(f"{letter}: {text}" for letter, text in zip(letters, descriptions))


def prompt_body(cfg: VLMConfig, class_names: list[str]) -> str:
    """The user turn's text: ``cfg.prompt`` with {question} and {options} filled in."""
    descriptions = class_descriptions(cfg, class_names)
    options = format_options(descriptions, option_letters(len(descriptions), cfg.option_letters))
    try:
        return cfg.prompt.format(question=cfg.question, options=options)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"vlm.prompt: bad template {cfg.prompt!r} ({exc}); use only {{question}} and {{options}}") from None


def class_descriptions(cfg: VLMConfig, class_names: list[str]) -> list[str]:
    """One option text per class, in class order (``vlm.options``, else the class names)."""
    if cfg.options and len(cfg.options) != len(class_names):
        raise ConfigError(f"vlm.options: {len(cfg.options)} options for classes {class_names}; give one per class, in class order")
    return list(cfg.options or class_names)


def image_placeholder(processor) -> str:
    """The text token that marks where the processor inserts the image (Gemma 3: <start_of_image>; LLaVA: <image>)."""
    for attr in ("boi_token", "image_token"):
        token = getattr(processor, attr, None)
        if isinstance(token, str) and token:
            return token
    raise ConfigError(f"{type(processor).__name__}: no image token found; set vlm.chat_template: true with a processor that has one")


def build_prompt(processor, cfg: VLMConfig, class_names: list[str]) -> str:
    """The full prompt text up to the answer: chat template (when used) with the image and body, then the answer prefix."""
    body = prompt_body(cfg, class_names)
    if cfg.chat_template and getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": body}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = f"{image_placeholder(processor)}\n{body}\n"
    if cfg.answer_prefix and text and not text[-1].isspace():
        text += " "  # "ASSISTANT: Answer:" rather than "ASSISTANT:Answer:"
    return text + cfg.answer_prefix


def option_continuations(cfg: VLMConfig, class_names: list[str]) -> list[str]:
    """The text scored for each class after the prompt: its letter or its description, after a space when there is an answer prefix."""
    descriptions = class_descriptions(cfg, class_names)
    answers = option_letters(len(descriptions), cfg.option_letters) if cfg.answer == "letter" else descriptions
    sep = " " if cfg.answer_prefix else ""
    return [sep + a for a in answers]


def option_token_ids(tokenizer, prompt: str, continuations: list[str]) -> list[list[int]]:
    """Each option's token ids as the tokenizer splits them after the prompt (so word-initial pieces are right)."""
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    out = []
    for text in continuations:
        full = tokenizer.encode(prompt + text, add_special_tokens=False)
        if full[: len(prompt_ids)] != prompt_ids or len(full) == len(prompt_ids):
            raise ConfigError(f"vlm: the option {text.strip()!r} merges with the end of the prompt when tokenized; "
                              "end vlm.answer_prefix with ':' or a newline")
        out.append(full[len(prompt_ids):])
    for i in range(len(out)):
        for j in range(i):
            if out[i] == out[j]:
                raise ConfigError(f"vlm: options {continuations[j].strip()!r} and {continuations[i].strip()!r} give the same tokens "
                                  f"{out[i]} (unknown to the tokenizer?); use distinct vlm.options or vlm.option_letters")
    return out


def bf16_supported(device: torch.device) -> bool:
    """Whether this device runs bfloat16 natively (CUDA with bf16 support; CPU counts as no)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"vlm.device: {name!r} but no CUDA GPU is visible; use auto or cpu")
    return torch.device(name)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Weights' dtype: bf16 only where the hardware supports it ("auto" picks it there), else fp32."""
    bf16 = precision.startswith("bf16")
    if bf16 and not bf16_supported(device):
        raise ConfigError(f"vlm.precision: {precision} needs a GPU with bfloat16 support, this run is on {device}; "
                          "use auto or 32-true")
    if precision == "16-mixed":
        raise ConfigError("vlm.precision: 16-mixed is not supported for VLMs; use auto, bf16-true or 32-true")
    if bf16 or (precision == "auto" and bf16_supported(device)):
        return torch.bfloat16
    return torch.float32


def resolve_vlm_weights(name: str, cache_dir: str = "") -> ResolvedWeights:
    """``vlm.model`` as a weight source (a model folder or ``hf-hub:ORG/REPO``, cached or downloaded when online)."""
    if not name:
        raise ConfigError("vlm.model: empty; set it to a Hugging Face model folder or hf-hub:ORG/REPO")
    resolved = resolve_weights(name, cache_dir, key="vlm.model")
    if resolved.kind not in ("folder", "hf-hub") or not (resolved.folder / "config.json").is_file():
        raise WeightsError(f"{name}: vlm.model must be a Hugging Face model folder with config.json (from "
                           f"save_pretrained or `medfit weights pull hf-hub:ORG/REPO --to FOLDER`) or hf-hub:ORG/REPO "
                           f"(this is a {resolved.kind} source{'' if resolved.kind != 'folder' else ' without config.json'})")
    return resolved


def resolve_model_dir(name: str, cache_dir: str = "") -> Path:
    """The model's local folder (``vlm.model`` resolved as a weight source)."""
    return resolve_vlm_weights(name, cache_dir).folder


def load_vlm(cfg: VLMConfig, device: torch.device | None = None, dtype: torch.dtype | None = None):
    """Load (model, processor) from ``cfg.model`` offline, on ``device`` in ``dtype`` (defaults: from cfg)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor  # heavy (~5 s): only VLM runs need it

    folder = resolve_model_dir(cfg.model, cfg.cache_dir)
    device = device or resolve_device(cfg.device)
    dtype = dtype or resolve_dtype(cfg.precision, device)
    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{folder}: cannot load the VLM {cfg.model!r} ({first}); the folder needs config.json, the "
                           "weights (*.safetensors) and the processor/tokenizer files") from None
    processor.tokenizer.padding_side = "left"  # the answer position is then the last one for every row
    return model.to(device), processor


def lora_target_modules(model: nn.Module, names: list[str], include_vision: bool = False) -> list[str]:
    """Full names of the linear layers LoRA adapts: the language model's ``names`` (+ every vision-tower linear)."""
    targets = []
    for full, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        leaf = full.rsplit(".", 1)[-1]
        in_language = any(f"{p}." in f"{full}." for p in LANGUAGE_PARTS)
        in_vision = any(f"{p}." in f"{full}." for p in VISION_PARTS)
        if (in_language and not in_vision and leaf in names) or (include_vision and in_vision):
            targets.append(full)
    if not targets:
        raise ConfigError(f"vlm.lora.targets: no linear layer named {names} in the language model of {type(model).__name__}")
    return targets


def add_lora(model: nn.Module, cfg: VLMConfig) -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters on the configured layers (base weights frozen)."""
    lora = PeftLoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, bias="none",
                          target_modules=lora_target_modules(model, cfg.lora.targets, cfg.lora_vision))
    return get_peft_model(model, lora)


def images_to_pil(images: torch.Tensor | np.ndarray) -> list:
    """(B, C, H, W) floats in [0, 1] (medfit's prepared images) -> RGB PIL images."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    out = []
    for img in arr:
        if img.shape[0] == 1:
            img = np.repeat(img, 3, axis=0)
        out.append(Image.fromarray(np.ascontiguousarray(img[:3].transpose(1, 2, 0)), mode="RGB"))
    return out


def extend_inputs(batch: dict, token_ids: list[int]) -> dict:
    """Append the same tokens to every row: ids, attention 1s, zeros for other per-token inputs (token_type_ids ...)."""
    ids = batch["input_ids"]
    extra = torch.tensor(token_ids, dtype=ids.dtype, device=ids.device).expand(ids.shape[0], -1)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.shape[:2] == ids.shape and key != "pixel_values":
            fill = extra if key == "input_ids" else torch.full_like(extra, 1 if key == "attention_mask" else 0, dtype=value.dtype)
            value = torch.cat([value, fill], dim=1)
        out[key] = value
    return out


class VLMClassifier(nn.Module):
    """A VLM that answers a multiple-choice prompt; ``forward(images)`` returns per-class scores (summed log-probs)."""

    def __init__(self, model: nn.Module, processor, class_names: list[str], cfg: VLMConfig):
        super().__init__()
        self.model, self.processor, self.class_names, self.cfg = model, processor, list(class_names), cfg
        self.prompt = build_prompt(processor, cfg, class_names)
        self.option_ids = option_token_ids(processor.tokenizer, self.prompt, option_continuations(cfg, class_names))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode(self, images) -> dict:
        """Processor inputs for a batch of images (PIL, or (B, C, H, W) tensors in [0, 1]) with the prompt."""
        if isinstance(images, (torch.Tensor, np.ndarray)):
            images = images_to_pil(images)
        # one image per prompt, nested so that processors counting images per sample (Gemma 3) agree
        # chat templates (Gemma's) often write the bos token themselves; the tokenizer must not add a second one
        bos = getattr(self.processor.tokenizer, "bos_token", None)
        batch = self.processor(text=[self.prompt] * len(images), images=[[img] for img in images], return_tensors="pt",
                               padding=True, add_special_tokens=not (bos and self.prompt.startswith(bos)))
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, dtype=self.dtype if value.is_floating_point() else None)
            out[key] = value
        return out

    def option_scores(self, batch: dict) -> torch.Tensor:
        """(B, K) log-probability of each option's tokens after the prompt (summed over an option's tokens)."""
        if all(len(ids) == 1 for ids in self.option_ids):
            logits = self.model(**batch, logits_to_keep=1, use_cache=False).logits[:, -1].float()
            return logits.log_softmax(-1)[:, [ids[0] for ids in self.option_ids]]
        scores = []
        for ids in self.option_ids:
            # teacher forcing: the last len(ids) + 1 positions predict the option's tokens (the very last predicts beyond it)
            logits = self.model(**extend_inputs(batch, ids), logits_to_keep=len(ids) + 1, use_cache=False).logits[:, :-1].float()
            target = torch.tensor(ids, device=logits.device).expand(logits.shape[0], -1)
            scores.append(logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(1))
        return torch.stack(scores, dim=1)

    def forward(self, images) -> torch.Tensor:
        """Per-class scores (B, K); ``softmax`` of them gives the class probabilities."""
        return self.option_scores(self.encode(images))

    @torch.no_grad()
    def probabilities(self, images) -> torch.Tensor:
        """(B, K) class probabilities: softmax over the options' scores."""
        return self(images).softmax(dim=1)

    def loss(self, images, labels: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the option scores against the class labels (the classification the scoring reads)."""
        scores = self(images)
        weight = class_weights.to(scores.device) if class_weights is not None else None
        return F.cross_entropy(scores, labels.to(scores.device).long(), weight=weight)


def load_vlm_classifier(cfg: VLMConfig, class_names: list[str], adapter_dir: str | Path | None = None,
                        device: torch.device | None = None) -> VLMClassifier:
    """The classifier from ``cfg.model`` (offline), with a saved LoRA adapter folder applied when given."""
    model, processor = load_vlm(cfg, device)
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise WeightsError(f"{adapter_dir}: no adapter_config.json; expected a LoRA adapter saved by `medfit vlm`")
        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    model.eval()
    return VLMClassifier(model, processor, class_names, cfg)


class VLMLogits(nn.Module):
    """A VLM classifier's option scores as task logits: the K scores (multiclass), or score_1 - score_0 (binary,
    whose sigmoid is the two-option softmax probability of class 1)."""

    def __init__(self, classifier: VLMClassifier, binary: bool):
        super().__init__()
        self.classifier, self.binary = classifier, binary

    def forward(self, images) -> torch.Tensor:
        scores = self.classifier(images).float().cpu()
        return scores[:, 1:2] - scores[:, 0:1] if self.binary else scores


def load_vlm_run(run: RunFolder, which: str = "best") -> VLMLogits:
    """The network of a finished ``medfit vlm`` run: its config, class names and saved adapter (if any)."""
    cfg = run.read_config()
    adapter = run.adapter(which) if cfg.vlm.finetune == "lora" else None
    classifier = load_vlm_classifier(cfg.vlm, list(cfg.data.class_names), adapter)
    return VLMLogits(classifier, cfg.data.task == "binary").eval()
