"""The Lightning engine of every medfit fit: quiet logs, loggers, callbacks and the Trainer from ``cfg.train``."""
from __future__ import annotations

import logging
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import MLFlowLogger

from medfit.config import ExperimentConfig
from medfit.errors import ConfigError
from medfit.run_folder import RunFolder
from medfit.train.averaging import ema_callback, swa_callback
from medfit.train.checkpoint_io import SafeCheckpointIO
from medfit.train.checks import monitor_mode
from medfit.train.history import HistoryInCheckpoint, HistoryLogger


def quiet_lightning() -> None:
    """Keep Lightning's info lines and known harmless warnings out of the user's terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*predict_dataloader.*")
    warnings.filterwarnings("ignore", message=".*is an invalid version and will not be supported.*")
    # Lightning 2.6 against torch 2.13's pytree: a deprecation inside Lightning, nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def make_loggers(cfg: ExperimentConfig, run: RunFolder, history: list[dict] | None = None) -> list:
    """The history CSV always (the report reads it; ``history``: the lines a resumed run keeps), plus MLflow (a local
    SQLite store by default) unless disabled."""
    loggers = [HistoryLogger(run.file("training_log"), history)]
    if cfg.train.logger == "mlflow":
        uri = cfg.train.mlflow_uri or f"sqlite:///{run.path.resolve().parent / 'mlflow.db'}"
        loggers.append(MLFlowLogger(experiment_name="medfit", run_name=cfg.name, tracking_uri=uri))
    return loggers


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning's precision name; "auto" is bf16-mixed on a GPU that has bfloat16, else 32-true."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16-mixed" if gpu else "32-true"


def build_trainer(cfg: ExperimentConfig, run: RunFolder, callbacks: list, supervised: bool = True,
                  history: list[dict] | None = None, **overrides) -> L.Trainer:
    """The Lightning Trainer of a run: engine settings pass through from ``cfg.train``; ``supervised`` adds the
    weight average and early stopping on the validation metric (a pretraining run has neither). Checkpoints are
    written atomically and read as tensors only; the history's lines ride in each checkpoint."""
    t = cfg.train
    loggers = make_loggers(cfg, run, history)
    callbacks = [*callbacks, HistoryInCheckpoint(loggers[0])]
    if t.ema_decay and supervised:
        if not 0 < t.ema_decay < 1:
            raise ConfigError(f"train.ema_decay {t.ema_decay}: expected a value in (0, 1), e.g. 0.998, or 0 to disable")
        callbacks.append(ema_callback(t.ema_decay))
    if t.swa_epochs and supervised:
        if t.ema_decay or not 0 < t.swa_epochs <= t.epochs:
            raise ConfigError(f"train.swa_epochs {t.swa_epochs}: expected 1..train.epochs ({t.epochs}) and "
                              "train.ema_decay 0 (one weight average at a time)")
        callbacks.append(swa_callback(t.epochs, t.swa_epochs))
    if t.early_stopping_patience and supervised:
        callbacks.append(EarlyStopping(monitor=t.monitor, mode=monitor_mode(t.monitor), patience=t.early_stopping_patience))
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(leave=True))
    settings = dict(
        max_epochs=t.epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=t.strategy, precision=resolve_precision(t.precision, t.accelerator), logger=loggers, callbacks=callbacks,
        gradient_clip_val=t.optim.grad_clip or None, deterministic=True, enable_progress_bar=t.progress_bar,
        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None, default_root_dir=str(run.path),
        plugins=[SafeCheckpointIO()])
    settings.update(overrides)
    return L.Trainer(**settings)
