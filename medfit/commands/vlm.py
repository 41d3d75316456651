"""Classify with a vision-language model (zero-shot or LoRA) scored by option-token probabilities; write a normal run folder."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.commands.pipeline import finish_run, prepare_run
from medfit.config import ExperimentConfig, updated
from medfit.errors import DataError
from medfit.models.vlm import resolve_device, resolve_dtype, resolve_model_dir
from medfit.models.weights import SCHEMES
from medfit.report.summary import print_summary
from medfit.run_folder import RunFolder
from medfit.train.predict import predict_splits
from medfit.vlm.fit import check_vlm_config, fit_vlm
from medfit.vlm.tiny import build_tiny_vlm

LOG_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "val_auc"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit vlm``."""
    add_config_arguments(parser, "experiment YAML file with a vlm: section")
    parser.add_argument("--make-tiny", action="store_true",
                        help="first write a tiny random-weight LLaVA to vlm.model when that folder is absent "
                             "(smoke runs; AUC ~ chance)")


def vlm_run(cfg: ExperimentConfig, data_dir: str | None = None) -> RunFolder:
    """Zero-shot or LoRA-fine-tune ``cfg.vlm`` on ``cfg.data``: the same run-folder steps (audit included) as train."""
    cfg = updated(cfg, {"model.kind": "vlm"})
    check_vlm_config(cfg)
    resolve_model_dir(cfg.vlm.model, cfg.vlm.cache_dir)  # missing weights stop the run before anything is written
    resolve_dtype(cfg.vlm.precision, resolve_device(cfg.vlm.device))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if RunFolder.of(cfg.output_dir, cfg.name).has("predictions"):
        raise DataError(f"{Path(cfg.output_dir) / cfg.name}: holds a previous run; choose another name (--name) or "
                        "remove the folder")
    needs = ("train", "val") if cfg.vlm.finetune == "lora" else ("val",)
    run, manifest, cfg = prepare_run(cfg, data_dir, needs=needs)
    fitted = fit_vlm(cfg, run, manifest)
    if fitted.log:  # the report draws the training curves from it
        run.write_csv("training_log", pd.DataFrame(fitted.log, columns=LOG_COLUMNS))
    table = predict_splits(fitted.network, manifest, cfg, batch_size=cfg.vlm.eval_batch_size)
    run.write_predictions(table)
    run.write_json("train_info", fitted.info)
    return run


def run(args: argparse.Namespace) -> int:
    """Run ``medfit vlm``."""
    cfg = load_experiment(args)
    v = cfg.vlm
    if args.make_tiny and not v.model.startswith(SCHEMES) and not Path(v.model).exists():
        texts = [v.question, v.prompt, v.answer_prefix, *v.options, *cfg.data.class_names]
        print(f"writing a tiny random-weight VLM to {build_tiny_vlm(v.model, texts, seed=cfg.seed)}")
    print_summary(finish_run(vlm_run(cfg, args.data)))
    return 0
