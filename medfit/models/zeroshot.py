"""Zero-shot classification with a CLIP model: class prompts -> text embeddings -> image-text similarity."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medfit.config import ExperimentConfig, ModelConfig, save_config
from medfit.errors import ConfigError
from medfit.models.clip import ClipImageInput, load_open_clip

ZERO_SHOT_NAME = "clip_zero_shot"  # model.name a zero-shot run's config.yaml records


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


def build_zero_shot(cfg: ModelConfig, class_names: list[str], task: str) -> ZeroShotClassifier:
    """A zero-shot classifier from ``cfg.clip_model`` and the class prompts of ``cfg``."""
    if task == "multilabel":
        raise ConfigError("data.task: zero-shot classification supports binary and multiclass tasks")
    if len(class_names) < 2:
        raise ConfigError("data.class_names: zero-shot needs the class names (at least two) to build prompts")
    model, tokenizer = load_open_clip(cfg.clip_model, cfg.clip_cache_dir, image_size=cfg.clip_image_size)
    text = class_text_embeddings(model, tokenizer, class_prompts(class_names, cfg.prompts, cfg.prompt_templates))
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    return ZeroShotClassifier(model.visual, text, scale, task == "binary").eval()


def build_zero_shot_skeleton(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> ZeroShotClassifier:
    """A zero-shot run's network with empty class embeddings, to be filled from its checkpoint (``name: clip_zero_shot``)."""
    model, _ = load_open_clip(cfg.clip_model, cfg.clip_cache_dir, load_pretrained, cfg.clip_image_size)
    from medfit.models.clip import _embed_dim

    classes = max(2, num_outputs)
    return ZeroShotClassifier(model.visual, torch.zeros(classes, _embed_dim(model)), 100.0, num_outputs == 1)


def run_zero_shot(cfg: ExperimentConfig, data_dir: str | None = None, evaluate: bool = True) -> Path:
    """Score every non-training split zero-shot; writes the run folder (predictions.csv, metrics.json, report)."""
    from medfit.models import count_parameters
    from medfit.train.fit import prepare_run
    from medfit.train.predict import predict_dataset

    run_dir, manifest = prepare_run(cfg, data_dir)
    model = build_zero_shot(cfg.model, list(manifest.class_names), manifest.task)
    _, total = count_parameters(model)
    info = {"parameters": {"trainable": 0, "total": total}, "method": "zero-shot",
            "prompts": class_prompts(list(manifest.class_names), cfg.model.prompts, cfg.model.prompt_templates)}
    (run_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    # Saved like a trained run (class embeddings included) so predict, export and explain load it the same way.
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               run_dir / "checkpoints" / "best.ckpt")
    cfg.model.name = ZERO_SHOT_NAME
    save_config(cfg, run_dir / "config.yaml")
    predict_dataset(model, manifest, cfg, run_dir / "predictions.csv")
    if evaluate:
        from medfit.evaluate import evaluate_run
        from medfit.report import write_report

        evaluate_run(run_dir)
        write_report(run_dir)
    return run_dir
