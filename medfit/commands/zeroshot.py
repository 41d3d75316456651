"""Classify zero-shot with a CLIP model (BiomedCLIP) from class prompts; writes a scored run folder."""
from __future__ import annotations

import argparse

import torch

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.commands.pipeline import finish_run, prepare_run
from medfit.config import ExperimentConfig, updated
from medfit.models import count_parameters
from medfit.models.registry import load_report
from medfit.models.zeroshot import build_zero_shot, class_prompts
from medfit.report.summary import print_summary
from medfit.run_folder import RunFolder, atomic_write
from medfit.train.predict import predict_splits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit zeroshot``."""
    add_config_arguments(parser, "experiment YAML file (model.kind clip_zero_shot: model.clip source and prompts)")


def zero_shot_run(cfg: ExperimentConfig, data_dir: str | None = None) -> RunFolder:
    """Score every non-training split zero-shot; the run folder holds the class embeddings as its checkpoint, so
    predict, export and explain load it like a trained run."""
    if cfg.model.kind == "open_clip":
        cfg = updated(cfg, {"model.kind": "clip_zero_shot"})
    run, manifest, cfg = prepare_run(cfg, data_dir, needs=("val",))
    model = build_zero_shot(cfg.model, manifest.target)
    _, total = count_parameters(model)
    c = cfg.model.clip
    run.write_json("train_info", {"parameters": {"trainable": 0, "total": total}, "method": "zero-shot",
                                  "pretrained": load_report(model),
                                  "prompts": class_prompts(list(manifest.class_names), c.prompts, c.prompt_templates)})
    state = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    atomic_write(run.checkpoint("best"), lambda tmp: torch.save(state, tmp))
    run.write_predictions(predict_splits(model, manifest, cfg))
    return run


def run(args: argparse.Namespace) -> int:
    """Run ``medfit zeroshot``."""
    print_summary(finish_run(zero_shot_run(load_experiment(args), args.data)))
    return 0
