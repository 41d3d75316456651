"""Run a VLM classifier from a medfit config: zero-shot or LoRA fine-tuning, then predictions, metrics and the report."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig, VLMConfig, save_config
from medfit.errors import ConfigError, DataError
from medfit.models.vlm import (VLMClassifier, add_lora, load_vlm, load_vlm_classifier, resolve_device, resolve_dtype,
                               resolve_model_dir)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights for the cross-entropy (n / (K * n_k))."""
    counts = np.bincount(labels.astype(int), minlength=num_classes).clip(min=1)
    return torch.tensor(len(labels) / (num_classes * counts), dtype=torch.float32)


def class_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of (N, K) class probabilities (binary: of class 1; else macro one-vs-rest); NaN when undefined."""
    try:
        if probs.shape[1] == 2:
            return float(roc_auc_score(y, probs[:, 1]))
        return float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(probs.shape[1]))))
    except ValueError:
        return float("nan")


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


def train_lora(classifier: VLMClassifier, images: torch.Tensor, labels: np.ndarray, cfg: VLMConfig, seed: int,
               val: tuple[torch.Tensor, np.ndarray] | None = None, ckpt_dir: Path | None = None,
               progress: bool = False) -> list[dict]:
    """Fine-tune the classifier's trainable (LoRA) weights on the option cross-entropy; returns the log rows.

    One optimiser step per ``grad_accum_steps`` batches (the loss is averaged over the group, so with equal batches
    and no class weights a step sees the same gradient as one batch of ``batch_size * grad_accum_steps``). With ``val`` and ``ckpt_dir``, every epoch
    saves the adapter to ``ckpt_dir/last`` and, when the validation AUC improves, to ``ckpt_dir/best``.
    """
    model = classifier.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("vlm.finetune: the model has no trainable parameters; add LoRA adapters first")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = class_weights(labels, len(classifier.class_names)) if cfg.class_balance else None
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
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            step += 1
            log.append({"epoch": epoch, "step": step, "train_loss": total, "images": sum(len(idx) for idx in group)})
            if cfg.max_steps and step >= cfg.max_steps:
                break
        if val is not None:
            probs = predict_images(classifier, val[0], cfg.eval_batch_size, progress, "scoring val")
            val_loss = float(-np.log(np.clip(probs[np.arange(len(val[1])), val[1].astype(int)], 1e-12, None)).mean())
            auc = class_auc(val[1], probs)
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


def load_images(manifest, cfg: ExperimentConfig, desc: str) -> tuple[torch.Tensor, np.ndarray]:
    """A manifest's prepared images (N, C, H, W) in [0, 1] and class labels, through medfit's preprocessing cache."""
    from medfit.data.datasets import ImageDataset

    ds = ImageDataset(manifest, cfg, cfg.train.progress_bar, desc)
    return ds.images, manifest.labels()


def predictions_table(manifest, probs: np.ndarray) -> pd.DataFrame:
    """predictions.csv rows: the manifest's id columns and labels, ``prob`` (binary) or ``prob_<class>``."""
    keep = [c for c in ["image", "patient_id", "study_id", "site", "split", *manifest.label_columns] if c in manifest.df]
    table = manifest.df[keep].copy()
    if manifest.task == "binary":
        table["prob"] = probs[:, 1]
    else:
        for j, name in enumerate(manifest.class_names):
            table[f"prob_{name}"] = probs[:, j]
    return table


def run_vlm(cfg: ExperimentConfig, data_dir: str | None = None, evaluate: bool = True) -> Path:
    """Zero-shot or LoRA-fine-tune ``cfg.vlm`` on ``cfg.data``; write a normal medfit run folder and return it."""
    from medfit.data.manifest import build_manifest

    v = cfg.vlm
    if cfg.data.task == "multilabel":
        raise ConfigError("data.task: multilabel is not supported by `medfit vlm` (one answer per image); use binary or multiclass")
    if v.finetune == "lora" and (v.epochs < 1 or v.batch_size < 1 or v.grad_accum_steps < 1):
        raise ConfigError("vlm.epochs, vlm.batch_size and vlm.grad_accum_steps must be >= 1 for LoRA fine-tuning")
    # fail on missing weights or unsupported precision before anything is written
    resolve_model_dir(v.model, v.cache_dir)
    resolve_dtype(v.precision, resolve_device(v.device))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    run_dir = cfg.run_dir
    if (run_dir / "predictions.csv").exists():
        raise DataError(f"{run_dir}: holds a previous run; choose another name (--name) or remove the folder")
    manifest = build_manifest(cfg, data_dir)
    for split in ("train", "val") if v.finetune == "lora" else ("val",):
        if not (manifest.df["split"] == split).any():
            raise DataError(f"{cfg.data.root}: no {split!r} rows in the manifest; this run needs {split} images")
    cfg.data.class_names = list(manifest.class_names)
    cfg.model.name = f"vlm:{v.model}"  # what the report names; the VLM settings themselves are in the vlm section
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    manifest.to_csv(run_dir / "manifest.csv")

    t0 = time.perf_counter()
    model, processor = load_vlm(v)
    val_images, val_labels = load_images(manifest.split("val"), cfg, "loading val")
    if v.finetune == "lora":
        images, labels = load_images(manifest.split("train"), cfg, "loading train")
    timing = {"load_seconds": round(time.perf_counter() - t0, 1), "fit_seconds": 0.0, "epochs_run": 0,
              "train_images_per_second": 0.0}
    ckpt_dir = run_dir / "checkpoints"
    log: list[dict] = []
    if v.finetune == "lora":
        model = prepare_for_training(model, v)
        classifier = VLMClassifier(model, processor, manifest.class_names, v)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        t1 = time.perf_counter()
        log = train_lora(classifier, images, labels, v, cfg.seed, (val_images, val_labels), ckpt_dir, cfg.train.progress_bar)
        fit_seconds = time.perf_counter() - t1
        steps = [r for r in log if "train_loss" in r]
        timing.update(fit_seconds=round(fit_seconds, 1), epochs_run=len({r["epoch"] for r in steps}),
                      optimizer_steps=len(steps),
                      train_images_per_second=round(sum(r["images"] for r in steps) / max(fit_seconds, 1e-9), 2))
        del classifier, model, images
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        # predict with the saved best adapter, reloaded the way a user would (so the scores come from what is on disk)
        classifier = load_vlm_classifier(v, manifest.class_names, ckpt_dir / "best")
    else:
        classifier = VLMClassifier(model.eval(), processor, manifest.class_names, v)
        total, trainable = sum(p.numel() for p in model.parameters()), 0
    if log:  # the report draws the training curves from it
        (run_dir / "logs").mkdir(exist_ok=True)
        pd.DataFrame(log, columns=["epoch", "step", "train_loss", "val_loss", "val_auc"]).to_csv(run_dir / "logs" / "metrics.csv",
                                                                                                index=False)

    t2 = time.perf_counter()
    tables = []
    for split in [s for s in manifest.df["split"].unique() if s != "train"]:
        part = manifest.split(split)
        images = val_images if split == "val" else load_images(part, cfg, f"loading {split}")[0]
        probs = predict_images(classifier, images, v.eval_batch_size, cfg.train.progress_bar, f"scoring {split}")
        tables.append(predictions_table(part, probs))
    pd.concat(tables, ignore_index=True).to_csv(run_dir / "predictions.csv", index=False)
    timing["predict_seconds"] = round(time.perf_counter() - t2, 1)
    info = {"parameters": {"trainable": int(trainable), "total": int(total)}, "timing": timing,
            "vlm": {"prompt": classifier.prompt, "option_token_ids": classifier.option_ids, "finetune": v.finetune}}
    (run_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    if evaluate:
        from medfit.evaluate import evaluate_run
        from medfit.report import write_report

        evaluate_run(run_dir)
        write_report(run_dir)
    return run_dir


def load_run_classifier(run_dir: str | Path, which: str = "best") -> VLMClassifier:
    """The classifier of a finished ``medfit vlm`` run: its config, class names and saved adapter (if any)."""
    from medfit.evaluate.run import load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    adapter = run_dir / "checkpoints" / which if cfg.vlm.finetune == "lora" else None
    return load_vlm_classifier(cfg.vlm, cfg.data.class_names, adapter)
