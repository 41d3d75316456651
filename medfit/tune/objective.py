"""One trial: suggest values, train with a per-epoch pruning callback, score the run's predictions."""
from __future__ import annotations

import math
import os
import shutil
import socket
from collections.abc import Callable
from typing import Any

import optuna
import optuna.distributions as od
from lightning.pytorch.callbacks import Callback

from medfit.config import ExperimentConfig, updated
from medfit.evaluate import evaluate_predictions
from medfit.run_folder import RunFolder, StudyFolder
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


# Trains one trial's config with the given Lightning callbacks and returns its run folder (predictions written).
FitTrial = Callable[[ExperimentConfig, list], RunFolder]


def trial_config(trial: optuna.Trial, plan: StagePlan, study: StudyFolder, worker: int = 0) -> ExperimentConfig:
    """The stage's base config with this trial's values, epochs, early stopping and run folder."""
    if plan.is_seed_stage:
        values = {"seed": trial.suggest_categorical("seed", plan.seeds())}
    else:
        values = {k: suggest(trial, k, d) for k, d in plan.distributions.items()}
    stage = plan.stage
    if stage.epochs:
        values["train.epochs"] = stage.epochs
    if stage.early_stopping_patience >= 0:
        values["train.early_stopping_patience"] = stage.early_stopping_patience
    values.update({"train.progress_bar": False, "output_dir": str(study.trials),
                   "name": f"{plan.index + 1}-{stage.name}-{trial.number:03d}"})
    if plan.base.train.logger == "mlflow" and not plan.base.train.mlflow_uri:
        # one MLflow SQLite file per worker: parallel first runs would race to create one shared schema
        values["train.mlflow_uri"] = f"sqlite:///{study.trials.resolve() / f'mlflow-w{worker}.db'}"
    return with_params(plan.base, values)


def split_aucs(run: RunFolder, cfg: ExperimentConfig) -> tuple[dict[str, float], bool]:
    """AUC per split from the run's predictions (the spine's evaluation, no bootstrap); diverged runs score chance."""
    pred = run.read_predictions()
    prob_cols = [c for c in pred.columns if c == "prob" or c.startswith("prob_")]
    diverged = bool(pred[prob_cols].isna().any().any())
    pred[prob_cols] = pred[prob_cols].fillna(0.5)
    splits = evaluate_predictions(pred, updated(cfg, {"evaluate.bootstrap": 0}))["splits"]
    return {name: float(s["auc"]) for name, s in splits.items() if s.get("auc") is not None}, diverged


def train_objective(trial: optuna.Trial, plan: StagePlan, study: StudyFolder, fit_trial: FitTrial,
                    worker: int = 0) -> float:
    """Train one trial with the given fit function and return its validation AUC (best checkpoint)."""
    cfg = trial_config(trial, plan, study, worker)
    run = RunFolder.of(cfg.output_dir, cfg.name)
    shutil.rmtree(run.path, ignore_errors=True)  # numbers are never reused; only a crashed copy can be here
    trial.set_user_attr("run_dir", str(run.path))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    # the pruner ranks in the study's direction (maximise the validation AUC), whatever train.monitor is
    callbacks = [PruneOnMetric(trial, "val_auc")] if plan.stage.prune and not plan.is_seed_stage else []
    try:
        run = fit_trial(cfg, callbacks)
    except optuna.TrialPruned as exc:
        print(f"[tune w{worker}] {plan.stage.name} trial {trial.number}: pruned at {exc}", flush=True)
        raise
    finally:
        if not cfg.tune.keep_checkpoints and not plan.is_seed_stage:
            shutil.rmtree(run.checkpoints, ignore_errors=True)
    aucs, diverged = split_aucs(run, cfg)
    info = run.read_json_or("train_info", {})
    for split, value in aucs.items():
        trial.set_user_attr(f"{split}_auc", value)
    trial.set_user_attr("epochs_run", info.get("timing", {}).get("epochs_run"))
    if diverged:
        trial.set_user_attr("diverged", True)
    value = aucs.get("val", float("nan"))
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    print(f"[tune w{worker}] {plan.stage.name} trial {trial.number}: val AUC {value:.4f} ({shown})", flush=True)
    return 0.0 if math.isnan(value) else value
