"""Score a run folder's predictions: metrics with CIs at a validation-chosen threshold, and the report."""
from __future__ import annotations

import argparse

import yaml

from medfit.commands.common import add_run_argument
from medfit.config import updated
from medfit.config.ranges import range_problems
from medfit.errors import ConfigError
from medfit.evaluate.whole_run import evaluate_whole_run
from medfit.report import write_report
from medfit.report.summary import print_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit evaluate``."""
    add_run_argument(parser, "run folder (a trained or predicted run)")
    parser.add_argument("--threshold", choices=["youden", "fixed", "sensitivity", "specificity"],
                        help="override the threshold method")
    parser.add_argument("--threshold-value", type=float, help="fixed threshold or target sensitivity/specificity")
    parser.add_argument("--bootstrap", type=int, help="number of bootstrap resamples")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="evaluate.KEY=VALUE", dest="overrides",
                        help="change evaluation keys, e.g. --set evaluate.subgroups=[site] evaluate.conformal_alpha=0.05")


PREDICTION_KEYS = ("evaluate.mc_dropout", "evaluate.tta", "evaluate.tta_strength", "evaluate.tta_samples")


def evaluate_changes(overrides: list[str]) -> dict:
    """``evaluate.KEY=VALUE`` items (values as YAML); keys that change the predictions themselves are refused."""
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.startswith("evaluate."):
            raise ConfigError(f"--set {item!r}: medfit evaluate changes evaluate.KEY=VALUE only; retrain for other keys")
        if key in PREDICTION_KEYS:
            raise ConfigError(f"--set {key}: changes the predictions, not their scoring; set it in the config and "
                              "retrain (or use medfit predict)")
        changes[key] = yaml.safe_load(raw)
    return changes


def run(args: argparse.Namespace) -> int:
    """Run ``medfit evaluate``: check the new settings, score with them, save them in the run only when that succeeds."""
    changes = {"evaluate.threshold": args.threshold, "evaluate.threshold_value": args.threshold_value,
               "evaluate.bootstrap": args.bootstrap}
    changes = {**{k: v for k, v in changes.items() if v is not None}, **evaluate_changes(args.overrides)}
    cfg = updated(args.run.read_config(), changes)
    problems = range_problems(cfg, ("evaluate",))
    if problems:
        raise ConfigError("; ".join(problems))
    evaluate_whole_run(args.run, cfg)  # study-level and multilabel extras rescored with the same settings
    args.run.write_config(cfg)
    write_report(args.run)
    print_summary(args.run)
    return 0
