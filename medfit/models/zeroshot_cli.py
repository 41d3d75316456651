"""Classify zero-shot with a CLIP model (BiomedCLIP) from class prompts; writes a scored run folder."""
from __future__ import annotations

import argparse
import json

from medfit.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit zeroshot``."""
    parser.add_argument("config", help="experiment YAML file (model.clip_model, model.prompts, model.prompt_templates)")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    parser.add_argument("--name", help="run name (default: the config's name)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit zeroshot``."""
    from medfit.models.zeroshot import run_zero_shot
    from medfit.report.summary import print_summary

    cfg = load_config(args.config, args.set + ([f"name={args.name}"] if args.name else []))
    run_dir = run_zero_shot(cfg, data_dir=args.data)
    print_summary(run_dir, json.loads((run_dir / "metrics.json").read_text()))
    return 0
