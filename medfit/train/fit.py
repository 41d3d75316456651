"""Train a classifier from a config: manifest -> datasets -> Lightning fit -> predictions -> metrics -> report."""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from medfit.config import ExperimentConfig, save_config
from medfit.data.datasets import (EpochSeededSampler, ImageDataset, balanced_sample_weights,
                                  class_balance_weights)
from medfit.data.manifest import Manifest, build_manifest
from medfit.data.volumes import dataset_for, study_manifest
from medfit.errors import ConfigError, DataError
from medfit.models import build_model, count_parameters
from medfit.models.volume_models import build_volume_model
from medfit.train.averaging import ema_callback
from medfit.train.module import ClassifierModule
from medfit.train.predict import predict_dataset

log = logging.getLogger("medfit")


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*predict_dataloader.*")
    warnings.filterwarnings("ignore", message=".*is an invalid version and will not be supported.*")
    # Lightning 2.6 against torch 2.13's pytree: a deprecation inside Lightning, nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def make_loggers(cfg: ExperimentConfig, run_dir: Path) -> list:
    """A CSV logger always (the report reads it), plus MLflow (a local SQLite store by default) unless disabled."""
    loggers = [CSVLogger(save_dir=str(run_dir), name="logs", version="")]
    if cfg.train.logger == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        uri = cfg.train.mlflow_uri or f"sqlite:///{run_dir.resolve().parent / 'mlflow.db'}"
        loggers.append(MLFlowLogger(experiment_name="medfit", run_name=cfg.name, tracking_uri=uri))
    return loggers


def make_loader(dataset: ImageDataset, cfg: ExperimentConfig, train: bool) -> DataLoader:
    """A DataLoader; training order comes from an epoch-seeded sampler (optionally class-balanced)."""
    sampler = None
    if train:
        weights = balanced_sample_weights(dataset.manifest) if cfg.train.class_balance == "sampler" else None
        sampler = EpochSeededSampler(len(dataset), cfg.seed, weights)
    return DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler, shuffle=False,
                      num_workers=cfg.data.num_workers, drop_last=False,
                      persistent_workers=cfg.data.num_workers > 0)


def prepare_run(cfg: ExperimentConfig, data_dir: str | None = None) -> tuple[Path, Manifest]:
    """Create the run folder, write the resolved config and the manifest."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(cfg, data_dir)
    from medfit.audit import run_audit

    # DDP children re-run this function: they get the same (deterministic) audit but leave the files to rank 0
    first = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    manifest = run_audit(cfg, manifest, run_dir if first else None, log_findings=first).manifest
    manifest = study_manifest(manifest, cfg)  # key slices / neighbour rows (medfit.data.volumes)
    for split in ("train", "val"):
        if not (manifest.df["split"] == split).any():
            raise DataError(f"{cfg.data.root}: no {split!r} rows in the manifest; a run needs train and val images")
    if not cfg.data.class_names:
        cfg.data.class_names = list(manifest.class_names)
    save_config(cfg, run_dir / "config.yaml")
    manifest.to_csv(run_dir / "manifest.csv")
    return run_dir, manifest


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: list, **overrides) -> L.Trainer:
    """The Lightning Trainer of a run: engine settings pass through from ``cfg.train``."""
    t = cfg.train
    callbacks = list(callbacks)
    if t.ema_decay:
        if not 0 < t.ema_decay < 1:
            raise ConfigError(f"train.ema_decay {t.ema_decay}: expected a value in (0, 1), e.g. 0.998, or 0 to disable")
        callbacks.append(ema_callback(t.ema_decay))
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=t.monitor, mode="max", patience=t.early_stopping_patience))
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(leave=True))
    settings = dict(
        max_epochs=t.epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=t.strategy, precision=t.precision, logger=make_loggers(cfg, run_dir), callbacks=callbacks,
        gradient_clip_val=t.grad_clip or None, deterministic=True, enable_progress_bar=t.progress_bar,
        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None, default_root_dir=str(run_dir))
    settings.update(overrides)
    return L.Trainer(**settings)


def train(cfg: ExperimentConfig, data_dir: str | None = None, resume: bool = False, callbacks: list | None = None,
          evaluate: bool = True) -> Path | None:
    """Train, predict every split with the best checkpoint, evaluate and write the report; returns the run folder
    (None in the non-zero ranks of a multi-process run)."""
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    ckpt_dir = cfg.run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not resume and last.exists():  # checked before anything is written: a finished run is never overwritten
        raise DataError(f"{cfg.run_dir}: holds a previous run; pass --resume to continue it, or choose another name")
    if resume and not last.exists():
        raise DataError(f"{last}: no checkpoint to resume from; run without --resume to start")
    run_dir, manifest = prepare_run(cfg, data_dir)

    t0 = time.perf_counter()
    show = cfg.train.progress_bar
    train_set = dataset_for(manifest.split("train"), cfg, show, "loading train")
    val_set = dataset_for(manifest.split("val"), cfg, show, "loading val")
    load_seconds = time.perf_counter() - t0

    model = build_volume_model(cfg, manifest.num_outputs)
    trainable, total = count_parameters(model)
    weights = class_balance_weights(manifest.split("train")) if cfg.train.class_balance == "loss" else None
    train_loader, val_loader = make_loader(train_set, cfg, True), make_loader(val_set, cfg, False)
    module = ClassifierModule(model, manifest.task, cfg.train, weights, len(train_loader), cfg.seed)

    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.train.monitor, mode="max",
                                 save_last=True, save_top_k=1, enable_version_counter=False)
    trainer = build_trainer(cfg, run_dir, [checkpoint, *(callbacks or [])])
    t1 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None)
    fit_seconds = time.perf_counter() - t1
    if not trainer.is_global_zero:
        return None  # rank 0 predicts, evaluates and reports

    best = checkpoint.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    info = {"parameters": {"trainable": trainable, "total": total},
            "timing": {"load_seconds": round(load_seconds, 1), "fit_seconds": round(fit_seconds, 1),
                       "epochs_run": trainer.current_epoch, "world_size": trainer.world_size,
                       "best_checkpoint": Path(best).name,
                       "train_images_per_second": round(len(train_set) * trainer.current_epoch / max(fit_seconds, 1e-9), 1)}}
    (run_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    predict_dataset(module.model, manifest, cfg, run_dir / "predictions.csv", preloaded={"train": train_set, "val": val_set})
    if evaluate:
        from medfit.evaluate import evaluate_run
        from medfit.report import write_report

        evaluate_run(run_dir)
        if cfg.volume.augmented_prediction:
            from medfit.evaluate.augmented import evaluate_augmented

            evaluate_augmented(run_dir)
        if cfg.data.task == "multilabel":
            from medfit.evaluate.augmented import evaluate_any_label

            evaluate_any_label(run_dir)
        write_report(run_dir)
    return run_dir
