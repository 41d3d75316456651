"""Score a run folder's predictions: metrics with CIs at a validation-chosen threshold, and the report."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit evaluate``."""
    parser.add_argument("run", help="run folder (holds config.yaml and predictions.csv)")
    parser.add_argument("--threshold", choices=["youden", "fixed", "sensitivity", "specificity"],
                        help="override the threshold method")
    parser.add_argument("--threshold-value", type=float, help="fixed threshold or target sensitivity/specificity")
    parser.add_argument("--bootstrap", type=int, help="number of bootstrap resamples")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit evaluate``."""
    from medfit.config import save_config
    from medfit.evaluate import evaluate_run
    from medfit.evaluate.run import load_run_config
    from medfit.report import write_report
    from medfit.report.summary import print_summary

    run_dir = Path(args.run)
    cfg = load_run_config(run_dir)
    if args.threshold:
        cfg.evaluate.threshold = args.threshold
    if args.threshold_value is not None:
        cfg.evaluate.threshold_value = args.threshold_value
    if args.bootstrap is not None:
        cfg.evaluate.bootstrap = args.bootstrap
    save_config(cfg, run_dir / "config.yaml")
    metrics = evaluate_run(run_dir, cfg)
    write_report(run_dir)
    print_summary(run_dir, metrics)
    return 0
