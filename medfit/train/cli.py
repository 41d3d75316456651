"""Train a classifier from a YAML config, then evaluate it and write the report."""
from __future__ import annotations

import argparse
import json

from medfit.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit train``."""
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys, e.g. train.epochs=3")
    parser.add_argument("--name", help="run name (default: the config's name)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit train``."""
    from medfit.report.summary import print_summary
    from medfit.train.fit import train

    cfg = load_config(args.config, args.set + ([f"name={args.name}"] if args.name else []))
    run_dir = train(cfg, data_dir=args.data, resume=args.resume)
    if run_dir is None:  # a non-zero rank of a multi-process run
        return 0
    print_summary(run_dir, json.loads((run_dir / "metrics.json").read_text()))
    return 0
