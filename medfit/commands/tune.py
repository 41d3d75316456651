"""Staged hyperparameter search with Optuna: broad LR, narrow LR + regularisation, scheduler, seeds."""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

import optuna
import torch

from medfit.audit import run_audit
from medfit.commands.common import add_config_arguments, load_experiment
from medfit.commands.pipeline import train_run
from medfit.commands.preflight import preflight
from medfit.config import ExperimentConfig
from medfit.config.ranges import TRAINING
from medfit.errors import ConfigError, MedfitError, error_lines
from medfit.tune.objective import train_objective
from medfit.tune.report import write_outputs
from medfit.tune.search import Objective, open_storage, run_worker, storage_url, study_folder
from medfit.tune.stages import StagePlan, check_plan

STORAGE_ENV = "MEDFIT_TUNE_STORAGE"  # the study storage URL, for workers and for users who keep it off command lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit tune``."""
    add_config_arguments(parser, "experiment YAML file (its tune: section holds the space and the stages)")
    parser.add_argument("--study", required=True, help="study name; rerunning with the same name continues it")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study (default 1)")
    parser.add_argument("--storage", help="SQLAlchemy URL shared by all workers, e.g. postgresql://user@host/db "
                                          f"(default: ${STORAGE_ENV}, else tune.storage, else SQLite in "
                                          "<output_dir>/tune/<study>/); a URL with a password is safer in the "
                                          "environment variable than on a command line")
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)  # >0: a spawned worker


def training_objective(study: str, cfg: ExperimentConfig, data_dir: str | None, worker: int = 0) -> Objective:
    """The trial objective that trains each trial's config through the run pipeline (prepare, fit, predict)."""
    folder = study_folder(cfg, study)

    def fit_trial(trial_cfg: ExperimentConfig, callbacks: list):
        return train_run(trial_cfg, data_dir, callbacks=callbacks)

    def objective(trial: optuna.Trial, plan: StagePlan) -> float:
        return train_objective(trial, plan, folder, fit_trial, worker)

    return objective


def _worker_command(args: argparse.Namespace, index: int) -> list[str]:
    # `python -m medfit.commands.tune` skips importing every other verb (seconds per worker on a busy machine); the
    # storage URL goes by environment (STORAGE_ENV): a command line is visible to every user in `ps`
    cmd = [sys.executable, "-m", "medfit.commands.tune", args.config, "--study", args.study,
           "--workers", str(args.workers), "--worker-index", str(index)]
    if args.data:
        cmd += ["--data", args.data]
    if args.name:
        cmd += ["--name", args.name]
    if args.overrides:
        cmd += ["--set", *args.overrides]
    return cmd


def spawn_workers(args: argparse.Namespace, url: str) -> list[subprocess.Popen]:
    """Workers 1..N-1 of the study, each told the storage URL by environment (never on its command line)."""
    env = {**os.environ, STORAGE_ENV: url}
    return [subprocess.Popen(_worker_command(args, i), env=env) for i in range(1, args.workers)]


def storage_given(args: argparse.Namespace) -> str | None:
    """--storage, else $MEDFIT_TUNE_STORAGE (how spawned workers get it; a password there stays out of `ps`)."""
    return args.storage or os.environ.get(STORAGE_ENV) or None


def _quiet_trial_audits() -> None:
    """Every trial repeats the study's audit from the cache: its findings are said once, before the first trial."""
    logging.getLogger("medfit.audit").setLevel(logging.ERROR)


def run(args: argparse.Namespace) -> int:
    """Run ``medfit tune``: this process is worker 0; --workers N spawns N-1 more on the same study."""
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    cfg = load_experiment(args)
    check_plan(cfg)
    manifest = preflight(cfg, args.data, run_folder=False, sections=(*TRAINING, "tune"))
    if args.workers > 1:  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.workers))
    if args.worker_index:
        _quiet_trial_audits()
        run_worker(cfg, args.study, storage_given(args), args.worker_index,
                   training_objective(args.study, cfg, args.data, args.worker_index))
        return 0
    # audit once before any worker starts, so a leak stops the study here; trials re-use the cached fingerprints
    run_audit(cfg, manifest, study_folder(cfg, args.study))
    _quiet_trial_audits()
    url = storage_url(cfg, args.study, storage_given(args))
    open_storage(url, cfg.tune.heartbeat_seconds)  # create the schema once, before the workers race for it
    children = spawn_workers(args, url)
    try:
        run_worker(cfg, args.study, url, 0, training_objective(args.study, cfg, args.data))
    except BaseException:
        for child in children:  # their running trials are failed by the heartbeat and retried on the next run
            child.terminate()
        raise
    finally:
        codes = [c.wait() for c in children]
    if any(codes):
        print(f"error: {sum(1 for c in codes if c)} of {len(children)} spawned workers failed (exit codes {codes}); "
              f"rerun the same command to continue the study", file=sys.stderr)
        return 1
    summary = write_outputs(cfg, args.study, url)
    folder = study_folder(cfg, args.study)
    for stage in summary["stages"]:
        if "best_value" in stage:
            print(f"stage {stage['name']}: best val AUC {stage['best_value']:.4f} {stage['best_params']}")
        elif "val_auc" in stage:
            print(f"stage {stage['name']}: val AUC {stage['val_auc']}, test AUC {stage['test_auc']} (mean ± sd over seeds)")
    print(f"best config: {folder.file('best_config')}\nreport: {folder.file('report')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m medfit.commands.tune``: the tune verb alone (how --workers starts its worker processes)."""
    parser = argparse.ArgumentParser(prog="medfit tune", description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except MedfitError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
