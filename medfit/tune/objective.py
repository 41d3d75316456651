"""One trial: suggest values, train with a per-epoch pruning callback, score the run's predictions."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import optuna
import optuna.distributions as od
from lightning.pytorch.callbacks import Callback

from medfit.config import ExperimentConfig
from medfit.tune.space import with_params
from medfit.tune.stages import StagePlan


class PruneOnMetric(Callback):
    """Reports the monitored validation metric to the trial after each validation and prunes when told to."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_auc"):
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {self.monitor} {float(value):.4f} below the pruner's bar")


def suggest(trial: optuna.Trial, key: str, dist) -> Any:
    """Ask the trial for a value of ``key`` from its distribution."""
    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)


def trial_config(trial: optuna.Trial, plan: StagePlan, trials_dir: Path, worker: int = 0) -> ExperimentConfig:
    """The stage's base config with this trial's values, epochs, early stopping and run folder."""
    if plan.is_seed_stage:
        cfg = with_params(plan.base, {"seed": trial.suggest_categorical("seed", plan.seeds())})
    else:
        cfg = with_params(plan.base, {k: suggest(trial, k, d) for k, d in plan.distributions.items()})
    stage = plan.stage
    if stage.epochs:
        cfg.train.epochs = stage.epochs
    if stage.early_stopping_patience >= 0:
        cfg.train.early_stopping_patience = stage.early_stopping_patience
    cfg.train.progress_bar = False
    cfg.output_dir = str(trials_dir)
    cfg.name = f"{plan.index + 1}-{stage.name}-{trial.number:03d}"
    if cfg.train.logger == "mlflow" and not cfg.train.mlflow_uri:
        # one MLflow SQLite file per worker: parallel first runs would race to create one shared schema
        cfg.train.mlflow_uri = f"sqlite:///{Path(trials_dir).resolve() / f'mlflow-w{worker}.db'}"
    return cfg


def split_aucs(run_dir: Path, cfg: ExperimentConfig) -> tuple[dict[str, float], bool]:
    """AUC per split from the run's predictions (the spine's evaluation, no bootstrap); diverged runs score chance."""
    import pandas as pd

    from medfit.evaluate import evaluate_predictions

    pred = pd.read_csv(run_dir / "predictions.csv")
    prob_cols = [c for c in pred.columns if c == "prob" or c.startswith("prob_")]
    diverged = bool(pred[prob_cols].isna().any().any())
    pred[prob_cols] = pred[prob_cols].fillna(0.5)
    cfg.evaluate.bootstrap = 0
    splits = evaluate_predictions(pred, cfg)["splits"]
    return {name: float(s["auc"]) for name, s in splits.items() if s.get("auc") is not None}, diverged


def train_objective(trial: optuna.Trial, plan: StagePlan, tune_dir: Path, data_dir: str | None = None,
                    worker: int = 0) -> float:
    """Train one trial with the spine's ``train`` and return its validation AUC (best checkpoint)."""
    import json
    import math

    from medfit.train.fit import train

    cfg = trial_config(trial, plan, Path(tune_dir) / "trials", worker)
    shutil.rmtree(cfg.run_dir, ignore_errors=True)  # numbers are never reused; only a crashed copy can be here
    trial.set_user_attr("run_dir", str(cfg.run_dir))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    callbacks = [PruneOnMetric(trial, cfg.train.monitor)] if plan.stage.prune and not plan.is_seed_stage else []
    try:
        run_dir = train(cfg, data_dir=data_dir, callbacks=callbacks, evaluate=False)
    except optuna.TrialPruned as exc:
        print(f"[tune w{worker}] {plan.stage.name} trial {trial.number}: pruned at {exc}", flush=True)
        raise
    finally:
        if not cfg.tune.keep_checkpoints and not plan.is_seed_stage:
            shutil.rmtree(cfg.run_dir / "checkpoints", ignore_errors=True)
    aucs, diverged = split_aucs(run_dir, cfg)
    info = json.loads((run_dir / "train_info.json").read_text()) if (run_dir / "train_info.json").is_file() else {}
    for split, value in aucs.items():
        trial.set_user_attr(f"{split}_auc", value)
    trial.set_user_attr("epochs_run", info.get("timing", {}).get("epochs_run"))
    if diverged:
        trial.set_user_attr("diverged", True)
    value = aucs.get("val", float("nan"))
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    print(f"[tune w{worker}] {plan.stage.name} trial {trial.number}: val AUC {value:.4f} ({shown})", flush=True)
    return 0.0 if math.isnan(value) else value
