"""Classify with a vision-language model (zero-shot or LoRA) scored by option-token probabilities; write a normal run folder."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from medfit.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit vlm``."""
    parser.add_argument("config", help="experiment YAML file with a vlm: section")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys, e.g. vlm.finetune=none")
    parser.add_argument("--name", help="run name (default: the config's name)")
    parser.add_argument("--make-tiny", action="store_true",
                        help="first write a tiny random-weight LLaVA to vlm.model when that folder is absent (smoke runs; AUC ~ chance)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit vlm``."""
    from medfit.report.summary import print_summary
    from medfit.vlm.fit import run_vlm

    cfg = load_config(args.config, args.set + ([f"name={args.name}"] if args.name else []))
    if args.make_tiny and not Path(cfg.vlm.model).exists():
        from medfit.vlm.tiny import build_tiny_vlm

        v = cfg.vlm
        texts = [v.question, v.prompt, v.answer_prefix, *v.options, *cfg.data.class_names]
        print(f"writing a tiny random-weight VLM to {build_tiny_vlm(v.model, texts, seed=cfg.seed)}")
    run_dir = run_vlm(cfg, data_dir=args.data)
    print_summary(run_dir, json.loads((run_dir / "metrics.json").read_text()))
    return 0
