"""Fit a classifier on a prepared run: datasets -> Lightning fit -> best weights -> predictions table. Stops there:
evaluation and the report are composed on top (medfit.commands)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from medfit.config import ExperimentConfig
from medfit.data.covariates import covariate_width, fit_covariates
from medfit.data.datasets import EpochSeededSampler, PreparedDataset, balanced_sample_weights
from medfit.data.manifest import Manifest
from medfit.models import build_network, count_parameters
from medfit.models.checkpoint import read_checkpoint
from medfit.models.normalise import normalisation_records
from medfit.models.registry import load_report
from medfit.run_folder import RunFolder
from medfit.train.checks import check_validation_split, monitor_mode, weights_warnings
from medfit.train.engine import build_trainer, quiet_lightning
from medfit.train.history import history_through
from medfit.train.inputs import dataset_for
from medfit.train.module import ClassifierModule
from medfit.train.resume import LastEpochCheckpoint, fit_interruptible, resume_from
from medfit.train.uncertainty import predict_members


@dataclass
class FitResult:
    """What a fit leaves besides its checkpoints: the trained network (best weights) and its record."""

    model: torch.nn.Module
    info: dict
    datasets: dict[str, PreparedDataset] = field(default_factory=dict)
    covariates: dict | None = None  # the covariate encoder fitted on the training rows (saved in the run)
    members: list[torch.nn.Module] = field(default_factory=list)  # deep ensemble: the other members (medfit.train.ensemble)
    seeds: list[int] = field(default_factory=list)  # the seed of the model, then of each member


def seed_everything(seed: int) -> None:
    """Seed every RNG and ask torch for deterministic kernels (CPU runs repeat exactly)."""
    L.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)


def is_main_process() -> bool:
    """Rank 0 of a multi-process run (or a single process): the one that writes the run folder."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def make_loader(dataset: PreparedDataset, cfg: ExperimentConfig, train: bool) -> DataLoader:
    """A DataLoader; training order comes from an epoch-seeded sampler (optionally class-balanced)."""
    sampler = None
    if train:
        weights = balanced_sample_weights(dataset.manifest) if cfg.train.class_balance == "sampler" else None
        sampler = EpochSeededSampler(len(dataset), cfg.seed, weights, cfg.train.augment.repeats)
    return DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler, shuffle=False,
                      num_workers=cfg.data.num_workers, drop_last=False,
                      persistent_workers=cfg.data.num_workers > 0)


def fit_run_covariates(cfg: ExperimentConfig, run: RunFolder, manifest: Manifest) -> dict | None:
    """The covariate encoder fitted on the training rows, written into the run (None without covariates)."""
    encoder = fit_covariates(manifest.split("train").df, cfg.covariates, f"{cfg.data.root} (train rows)")
    if encoder is not None and is_main_process():
        run.write_json("covariates", encoder)
    return encoder


def fit(cfg: ExperimentConfig, run: RunFolder, manifest: Manifest, resume: bool = False,
        callbacks: list | None = None, datasets: dict | None = None) -> FitResult | None:
    """Train on the manifest's train split, validate on val, keep the best weights; None in non-zero ranks."""
    quiet_lightning()
    check_validation_split(manifest, cfg.train.monitor, cfg.data.root or cfg.name)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    show = cfg.train.progress_bar
    covariates = fit_run_covariates(cfg, run, manifest)
    datasets = datasets or {s: dataset_for(manifest.split(s), cfg, show, f"loading {s}", covariates)
                            for s in ("train", "val")}
    load_seconds = time.perf_counter() - t0

    task = manifest.target
    model = build_network(cfg, task.num_outputs, covariates=covariate_width(covariates))
    pretrained = load_report(model)
    warnings = weights_warnings(cfg, pretrained)
    trainable, total = count_parameters(model)
    weights = task.class_weights(manifest.split("train").labels()) if cfg.train.class_balance == "loss" else None
    train_loader, val_loader = make_loader(datasets["train"], cfg, True), make_loader(datasets["val"], cfg, False)
    module = ClassifierModule(model, task, cfg.train, weights, len(train_loader), cfg.seed)
    checkpoint = ModelCheckpoint(dirpath=run.checkpoints, filename=run.checkpoint("best").stem,
                                 monitor=cfg.train.monitor, mode=monitor_mode(cfg.train.monitor), save_top_k=1,
                                 enable_version_counter=False)
    last = LastEpochCheckpoint(run.checkpoint("last"))
    history = history_through(run.file("training_log"), resume_from(run)["epoch"]) if resume else None
    trainer = build_trainer(cfg, run, [checkpoint, last, *(callbacks or [])], history=history)
    t1 = time.perf_counter()
    fit_interruptible(trainer, module, train_loader, val_loader, str(run.checkpoint("last")) if resume else None)
    fit_seconds = time.perf_counter() - t1
    if not trainer.is_global_zero:
        return None  # rank 0 predicts and writes

    best = checkpoint.best_model_path or str(run.checkpoint("last"))
    module.load_state_dict(read_checkpoint(best)["state_dict"])
    info = {"parameters": {"trainable": trainable, "total": total},
            "timing": {"load_seconds": round(load_seconds, 1), "fit_seconds": round(fit_seconds, 1),
                       "epochs_run": trainer.current_epoch, "world_size": trainer.world_size,
                       "best_checkpoint": os.path.basename(best),
                       "train_images_per_second": round(len(datasets["train"]) * trainer.current_epoch
                                                        / max(fit_seconds, 1e-9), 1)}}
    if pretrained is not None:
        info["pretrained"] = pretrained
    info["input_normalisation"] = normalisation_records(module.model)
    if warnings:
        info["warnings"] = warnings
    run.write_json("train_info", info)
    return FitResult(module.model, info, datasets, covariates, seeds=[cfg.seed])


def predict_run(result: FitResult, cfg: ExperimentConfig, manifest: Manifest, run: RunFolder) -> pd.DataFrame:
    """Predict every non-training split with the fitted network (or ensemble) and write the run's predictions."""
    table = predict_members([result.model, *result.members], result.seeds, manifest, cfg, preloaded=result.datasets,
                            covariates=result.covariates)
    run.write_predictions(table)
    return table
