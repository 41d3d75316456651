"""open_clip models (BiomedCLIP) from a local folder or the HF cache: image encoder as a backbone, text for zero-shot."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medfit.config import ModelConfig
from medfit.errors import WeightsError
from medfit.models.weights import SCHEMES, ResolvedWeights, cached_snapshot, hub_cache, resolve_weights

CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                "open_clip_pytorch_model.pth")
TOKENIZER_VOCAB = ("vocab.txt", "tokenizer.json")
BIOMEDCLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


@dataclass
class ClipSource:
    """Where an open_clip model's files are: its folder and, for a Hugging Face text tower, the text model folder."""

    folder: Path
    config: dict  # open_clip_config.json
    text_folder: Path | None  # BERT-like config.json + tokenizer; None when the text tower is open_clip's own
    weights: ResolvedWeights  # the source resolved (its record() goes into the run's train_info)


def _cache_name(cache_dir: str) -> str:
    return str(hub_cache(cache_dir))


def resolve_clip_source(spec: str, cache_dir: str = "") -> ClipSource:
    """Find every file an open_clip model needs; a WeightsError lists exactly which are missing and where to get them.

    ``spec`` is a weight source as model.pretrained takes it (medfit.models.weights): a model folder (``local-dir:``
    optional), e.g. one ``medfit weights pull --to`` wrote, or ``hf-hub:ORG/REPO`` (cached, else downloaded online).
    """
    local = Path(spec.removeprefix("local-dir:")).expanduser()
    if not spec.startswith(SCHEMES) and local.is_dir():
        _check_files(local, spec)  # name what a partial open_clip folder lacks (resolve_weights knows no open_clip)
    weights = resolve_weights(spec, cache_dir, key="model.clip.source")
    if weights.kind not in ("folder", "hf-hub"):
        raise WeightsError(f"{spec}: model.clip.source takes an open_clip model folder or hf-hub:ORG/REPO (this is a "
                           f"{weights.kind} source)")
    folder = weights.folder
    _check_files(folder, spec)
    # the file open_clip loads (its own order of preference), which the run's record hashes
    weights = dataclasses.replace(weights, path=next(folder / w for w in CLIP_WEIGHTS if (folder / w).is_file()))
    config = json.loads((folder / "open_clip_config.json").read_text())
    text_cfg = config.get("model_cfg", config).get("text_cfg", {})
    text_folder = None
    if "hf_model_name" in text_cfg:
        # open_clip calls AutoConfig.from_pretrained(hf_model_name) with no cache dir: point it at files we found.
        text_name = text_cfg["hf_model_name"]
        candidates = [folder]
        snapshot = cached_snapshot(text_name, cache_dir)
        if snapshot is not None:
            candidates.append(snapshot)
        for c in candidates:
            if (c / "config.json").is_file() and any((c / v).is_file() for v in TOKENIZER_VOCAB):
                text_folder = c
                break
        if text_folder is None:
            need = [f for f in ("config.json", "vocab.txt") if not (folder / f).is_file()]
            raise WeightsError(
                f"{spec}: open_clip's text tower loads {text_name!r} by name; {folder} lacks its "
                f"{' and '.join(need)} and the HF cache {_cache_name(cache_dir)} does not hold them; download "
                f"config.json and vocab.txt from hf.co/{text_name} (`medfit weights pull {spec}` fetches both; offline: "
                f"`medfit weights pull {spec} --to DIR` on a connected machine) or put the two files in {folder}")
    return ClipSource(folder, config, text_folder, weights)


def _check_files(folder: Path, spec: str) -> None:
    """Refuse (one line) an open_clip folder without its config or weights, naming each missing file."""
    missing = []
    if not (folder / "open_clip_config.json").is_file():
        missing.append(f"{folder / 'open_clip_config.json'}")
    if not any((folder / w).is_file() for w in CLIP_WEIGHTS):
        missing.append(f"{folder / CLIP_WEIGHTS[2]} (or {', '.join(w for w in CLIP_WEIGHTS if w != CLIP_WEIGHTS[2])})")
    if missing:
        raise WeightsError(f"{spec}: missing {'; '.join(missing)}; copy them from the model repository")


def load_open_clip(spec: str, cache_dir: str = "", load_weights: bool = True, image_size: int = 0):
    """(open_clip model, tokenizer) from a weight source (an open_clip folder or ``hf-hub:ORG/REPO``);
    ``image_size`` > 0 resizes the image tower's input (timm resamples its position embeddings)."""
    return open_clip_from(resolve_clip_source(spec, cache_dir), spec, load_weights, image_size)


def open_clip_from(src: ClipSource, spec: str, load_weights: bool = True, image_size: int = 0):
    """(open_clip model, tokenizer) from resolved files."""
    import open_clip

    overrides = {"force_image_size": image_size} if image_size else {}
    model_cfg = src.config.get("model_cfg", src.config)
    text_cfg = dict(model_cfg.get("text_cfg", {}))
    if src.text_folder is not None:
        text_cfg.update(hf_model_name=str(src.text_folder), hf_tokenizer_name=str(src.text_folder),
                        hf_model_pretrained=False)  # the CLIP checkpoint holds the text weights
        overrides["text_cfg"] = text_cfg
    try:
        model = open_clip.create_model(f"local-dir:{src.folder}", load_weights=load_weights, **overrides)
    except (RuntimeError, ValueError, OSError) as exc:
        raise WeightsError(f"{spec}: open_clip cannot build the model from {src.folder} "
                           f"({str(exc).splitlines()[0][:300]})") from None
    if src.text_folder is not None:
        tokenizer = open_clip.tokenizer.HFTokenizer(str(src.text_folder),
                                                    context_length=text_cfg.get("context_length", 77))
    else:
        tokenizer = open_clip.get_tokenizer(f"local-dir:{src.folder}")
    return model.eval(), tokenizer


def clip_load_report(src: ClipSource, model: nn.Module) -> dict:
    """What train_info keeps about an open_clip model's weights, as for timm: the record (source, revision, sha256,
    normalisation) and how its tensors loaded (open_clip loads the whole checkpoint strictly)."""
    return {"weights": src.weights.record(), "tensors": len(model.state_dict()),
            "loaded_by": "open_clip.create_model, strict: every tensor of the checkpoint"}


class ClipImageInput(nn.Module):
    """Turns medfit images (C, H, W in [0, 1]) into what the CLIP image tower expects: RGB, its size, its normalisation."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        pre = getattr(visual, "preprocess_cfg", {}) or {}
        size = pre.get("size", getattr(visual, "image_size", 224))
        self.size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.register_buffer("mean", torch.tensor(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


class ClipImageClassifier(nn.Module):
    """A CLIP image encoder with a linear head on its image embedding."""

    def __init__(self, visual: nn.Module, embed_dim: int, num_outputs: int):
        super().__init__()
        self.prepare = ClipImageInput(visual)
        self.visual = visual
        self.head = nn.Linear(embed_dim, num_outputs)
        self.medfit_head = ["head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(self.prepare(x)))


def build_clip_classifier(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> ClipImageClassifier:
    """``model.clip.source``'s image encoder (text tower dropped) under a fresh linear head."""
    src = resolve_clip_source(cfg.clip.source, cfg.clip.cache_dir)
    model, _ = open_clip_from(src, cfg.clip.source, load_pretrained, cfg.clip.image_size)
    classifier = ClipImageClassifier(model.visual, embed_dim(model), num_outputs)
    if load_pretrained:  # train_info's record of the starting weights (medfit.models.registry.load_report)
        classifier.medfit_load_report = clip_load_report(src, model)
    return classifier


@torch.no_grad()
def embed_dim(model: nn.Module) -> int:
    """Width of an open_clip model's image embedding (one forward pass of a blank image)."""
    size = ClipImageInput(model.visual).size
    return model.visual(torch.zeros(1, 3, *size)).shape[-1]
