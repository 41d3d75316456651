"""Fine-tune a VLM classifier with LoRA on the option cross-entropy (zero-shot needs no fitting)."""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig, VLMConfig
from medfit.data.manifest import Manifest
from medfit.errors import ConfigError, DataError
from medfit.models import count_parameters
from medfit.models.vlm import (VLMClassifier, VLMLogits, add_lora, load_vlm, load_vlm_classifier,
                               resolve_vlm_weights)
from medfit.run_folder import RunFolder
from medfit.task import Task
from medfit.train.inputs import dataset_for
from medfit.train.optim import build_optimizer, lr_schedule


@torch.no_grad()
def predict_images(classifier: VLMClassifier, images: torch.Tensor, batch_size: int, progress: bool = False,
                   desc: str = "scoring") -> np.ndarray:
    """(N, K) class probabilities for (N, C, H, W) images in [0, 1]."""
    classifier.model.eval()
    out = [classifier.probabilities(images[i:i + batch_size]).cpu().numpy()
           for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False)]
    return np.concatenate(out) if out else np.zeros((0, len(classifier.class_names)), dtype=np.float32)


def prepare_for_training(model: torch.nn.Module, cfg: VLMConfig) -> torch.nn.Module:
    """Gradient checkpointing (when asked) on the base model, then LoRA adapters on top."""
    if cfg.gradient_checkpointing:
        # transformers 5 renamed it activation checkpointing; non-reentrant needs no input-grad hooks under LoRA
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return add_lora(model, cfg)


def _val_scores(classifier: VLMClassifier, task: Task, val: tuple[torch.Tensor, np.ndarray], cfg: VLMConfig,
                progress: bool) -> tuple[float, float]:
    """(validation loss, validation AUC) of the classifier's option probabilities."""
    probs = predict_images(classifier, val[0], cfg.eval_batch_size, progress, "scoring val")
    y = val[1].astype(int)
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return loss, task.auc(y, task.from_choice(probs))


def train_lora(classifier: VLMClassifier, images: torch.Tensor, labels: np.ndarray, cfg: VLMConfig, seed: int,
               val: tuple[torch.Tensor, np.ndarray] | None = None, ckpt_dir: Path | None = None,
               progress: bool = False, task: Task | None = None) -> list[dict]:
    """Fine-tune the classifier's trainable (LoRA) weights on the option cross-entropy; returns the log rows.

    One optimiser step per ``grad_accum_steps`` batches (the loss is averaged over the group, so with equal batches
    and no class weights a step sees the same gradient as one batch of ``batch_size * grad_accum_steps``). With ``val``
    and ``ckpt_dir``, every epoch saves the adapter to ``ckpt_dir/last`` and, when the validation AUC improves, to
    ``ckpt_dir/best``.
    """
    task = task or Task("multiclass", tuple(classifier.class_names))
    model = classifier.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("vlm.finetune: the model has no trainable parameters; add LoRA adapters first")
    optimizer = build_optimizer([{"params": params}], cfg.optim)
    steps_per_epoch = math.ceil(math.ceil(len(images) / cfg.batch_size) / cfg.grad_accum_steps)
    schedule = lr_schedule(optimizer, cfg.optim, steps_per_epoch, cfg.max_steps or steps_per_epoch * cfg.epochs)
    weights = task.one_of_k().class_weights(labels) if cfg.class_balance else None
    generator = torch.Generator().manual_seed(seed)
    y_all = torch.tensor(np.asarray(labels), dtype=torch.long)
    log, step, best_auc = [], 0, -math.inf
    for epoch in range(cfg.epochs):
        model.train()
        batches = torch.randperm(len(images), generator=generator).split(cfg.batch_size)
        groups = [batches[i:i + cfg.grad_accum_steps] for i in range(0, len(batches), cfg.grad_accum_steps)]
        for group in tqdm(groups, desc=f"epoch {epoch}", disable=not progress, leave=False):
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for idx in group:
                loss = classifier.loss(images[idx], y_all[idx], weights) / len(group)
                loss.backward()
                total += float(loss.detach())
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            log.append({"epoch": epoch, "step": step, "train_loss": total, "images": sum(len(idx) for idx in group)})
            if cfg.max_steps and step >= cfg.max_steps:
                break
        if val is not None:
            val_loss, auc = _val_scores(classifier, task, val, cfg, progress)
            log.append({"epoch": epoch, "step": step, "val_loss": val_loss, "val_auc": auc})
            if ckpt_dir is not None:
                model.save_pretrained(ckpt_dir / "last")
                if (not math.isnan(auc) and auc > best_auc) or not (ckpt_dir / "best").exists():
                    best_auc = auc if not math.isnan(auc) else best_auc
                    shutil.rmtree(ckpt_dir / "best", ignore_errors=True)
                    shutil.copytree(ckpt_dir / "last", ckpt_dir / "best")
        if cfg.max_steps and step >= cfg.max_steps:
            break
    return log


def load_images(manifest: Manifest, cfg: ExperimentConfig, desc: str) -> tuple[torch.Tensor, np.ndarray]:
    """A manifest's prepared images (N, C, H, W) in [0, 1] and class labels, through medfit's preprocessing cache."""
    ds = dataset_for(manifest, cfg, cfg.train.progress_bar, desc)
    return ds.images.float(), manifest.labels()


def check_vlm_config(cfg: ExperimentConfig) -> None:
    """Refuse settings a VLM run cannot honour, before anything is loaded or written."""
    v = cfg.vlm
    if cfg.data.task == "multilabel":
        raise ConfigError("data.task: multilabel is not supported by `medfit vlm` (one answer per image); use binary "
                          "or multiclass")
    if v.finetune == "lora" and (v.epochs < 1 or v.batch_size < 1 or v.grad_accum_steps < 1):
        raise ConfigError("vlm.epochs, vlm.batch_size and vlm.grad_accum_steps must be >= 1 for LoRA fine-tuning")


@dataclass
class VLMFit:
    """A fitted (or zero-shot) VLM as a task network, with its training record."""

    network: VLMLogits
    info: dict
    log: list[dict] = field(default_factory=list)


def fit_vlm(cfg: ExperimentConfig, run: RunFolder, manifest: Manifest) -> VLMFit:
    """Zero-shot: the VLM as it is; LoRA: fine-tune on train, keep the best adapter by validation AUC and reload it
    from disk (so the scores come from what is saved)."""
    v, task = cfg.vlm, manifest.target
    for split in ("train", "val") if v.finetune == "lora" else ("val",):
        if not (manifest.df["split"] == split).any():
            raise DataError(f"{cfg.data.root}: no {split!r} rows in the manifest; this run needs {split} images")
    t0 = time.perf_counter()
    model, processor = load_vlm(v)
    timing = {"fit_seconds": 0.0, "epochs_run": 0, "train_images_per_second": 0.0}
    if v.finetune != "lora":
        classifier = VLMClassifier(model.eval(), processor, manifest.class_names, v)
        _, total = count_parameters(model)
        timing["load_seconds"] = round(time.perf_counter() - t0, 1)
        return VLMFit(VLMLogits(classifier, task.is_binary), _info(classifier, v, 0, total, timing))
    val = load_images(manifest.split("val"), cfg, "loading val")
    images, labels = load_images(manifest.split("train"), cfg, "loading train")
    timing["load_seconds"] = round(time.perf_counter() - t0, 1)
    model = prepare_for_training(model, v)
    classifier = VLMClassifier(model, processor, manifest.class_names, v)
    trainable, total = count_parameters(model)
    t1 = time.perf_counter()
    log = train_lora(classifier, images, labels, v, cfg.seed, val, run.checkpoints, cfg.train.progress_bar, task)
    steps = [r for r in log if "train_loss" in r]
    fit_seconds = time.perf_counter() - t1
    timing.update(fit_seconds=round(fit_seconds, 1), epochs_run=len({r["epoch"] for r in steps}),
                  optimizer_steps=len(steps),
                  train_images_per_second=round(sum(r["images"] for r in steps) / max(fit_seconds, 1e-9), 2))
    del classifier, model, images
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    best = load_vlm_classifier(v, manifest.class_names, run.adapter("best"))
    return VLMFit(VLMLogits(best, task.is_binary), _info(best, v, trainable, total, timing), log)


def _info(classifier: VLMClassifier, v: VLMConfig, trainable: int, total: int, timing: dict) -> dict:
    return {"parameters": {"trainable": int(trainable), "total": int(total)}, "timing": timing,
            "pretrained": vlm_load_report(v),
            "vlm": {"prompt": classifier.prompt, "option_token_ids": classifier.option_ids, "finetune": v.finetune}}


def vlm_load_report(v: VLMConfig) -> dict:
    """The weight record of ``vlm.model`` (source, revision, sha256, normalisation), as timm runs keep theirs."""
    return {"weights": resolve_vlm_weights(v.model, v.cache_dir).record(),
            "loaded_by": "transformers AutoModelForImageTextToText.from_pretrained (local files)"}
