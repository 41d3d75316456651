"""Zero-shot classification with a CLIP model: class prompts -> text embeddings -> image-text similarity."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medfit.config import ModelConfig
from medfit.errors import ConfigError
from medfit.models.clip import (ClipImageInput, clip_load_report, embed_dim, load_open_clip, open_clip_from,
                                resolve_clip_source)
from medfit.task import Task


def class_prompts(class_names: list[str], prompts: dict, templates: list[str]) -> list[list[str]]:
    """Every prompt of every class: each template filled with each of the class's descriptions (default: its name)."""
    unknown = set(prompts) - set(class_names)
    if unknown:
        raise ConfigError(f"model.prompts: {sorted(unknown)} are not classes ({class_names})")
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError("model.prompt_templates: give at least one template, each with a {} for the description")
    out = []
    for name in class_names:
        descriptions = prompts.get(name, name)
        descriptions = [descriptions] if isinstance(descriptions, str) else list(descriptions)
        out.append([t.format(d) for t in templates for d in descriptions])
    return out


@torch.no_grad()
def class_text_embeddings(model: nn.Module, tokenizer, prompts: list[list[str]]) -> torch.Tensor:
    """(classes, dim): the normalised mean of each class's normalised prompt embeddings."""
    rows = []
    for texts in prompts:
        emb = F.normalize(model.encode_text(tokenizer(texts)), dim=-1).mean(dim=0)
        rows.append(F.normalize(emb, dim=-1))
    return torch.stack(rows)


class ZeroShotClassifier(nn.Module):
    """CLIP image encoder against fixed class text embeddings; binary tasks give one logit (class 1 vs class 0)."""

    def __init__(self, visual: nn.Module, text_embeddings: torch.Tensor, logit_scale: float, binary: bool):
        super().__init__()
        self.prepare = ClipImageInput(visual)
        self.visual = visual
        self.register_buffer("text_embeddings", text_embeddings)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.binary = binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.visual(self.prepare(x)), dim=-1)
        logits = self.logit_scale * image @ self.text_embeddings.T
        # sigmoid(l1 - l0) equals the two-class softmax probability of class 1.
        return logits[:, 1:2] - logits[:, 0:1] if self.binary else logits


def build_zero_shot(cfg: ModelConfig, task: Task) -> ZeroShotClassifier:
    """A zero-shot classifier from ``model.clip.source`` and the class prompts of ``model.clip``."""
    if task.is_multilabel:
        raise ConfigError("data.task: zero-shot classification supports binary and multiclass tasks")
    if len(task.class_names) < 2:
        raise ConfigError("data.class_names: zero-shot needs the class names (at least two) to build prompts")
    c = cfg.clip
    src = resolve_clip_source(c.source, c.cache_dir)
    model, tokenizer = open_clip_from(src, c.source, image_size=c.image_size)
    text = class_text_embeddings(model, tokenizer, class_prompts(list(task.class_names), c.prompts,
                                                                  c.prompt_templates))
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    classifier = ZeroShotClassifier(model.visual, text, scale, task.is_binary).eval()
    classifier.medfit_load_report = clip_load_report(src, model)  # the run's record of its weights
    return classifier


def build_zero_shot_skeleton(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> ZeroShotClassifier:
    """A zero-shot run's network with empty class embeddings, filled from its checkpoint (``kind: clip_zero_shot``)."""
    c = cfg.clip
    model, _ = load_open_clip(c.source, c.cache_dir, load_pretrained, c.image_size)
    classes = max(2, num_outputs)
    return ZeroShotClassifier(model.visual, torch.zeros(classes, embed_dim(model)), 100.0, num_outputs == 1)
