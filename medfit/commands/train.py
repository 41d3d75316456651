"""Train a classifier from a YAML config, then evaluate it and write the report."""
from __future__ import annotations

import argparse

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.commands.pipeline import finish_run, train_run
from medfit.report.summary import print_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit train``."""
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit train``."""
    run_folder = train_run(load_experiment(args), data_dir=args.data, resume=args.resume)
    if run_folder is None:  # a non-zero rank of a multi-process run: rank 0 evaluates and reports
        return 0
    print_summary(finish_run(run_folder))
    return 0
