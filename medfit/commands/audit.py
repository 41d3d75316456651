"""Audit a dataset before training: duplicates and near-duplicates across splits, id leaks, label conflicts, shortcuts."""
from __future__ import annotations

import argparse

from medfit.audit.run import run_audit
from medfit.commands.common import add_config_arguments, load_experiment
from medfit.config import updated
from medfit.data.manifest import build_manifest
from medfit.run_folder import RunFolder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit audit``."""
    add_config_arguments(parser)
    parser.add_argument("--dedupe", action="store_true",
                        help="drop the training-side copies of cross-split duplicates and leaked ids instead of failing")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit audit``: print the summary and the findings, write the audit into the run folder; exit 2 on
    leaks/conflicts."""
    cfg = load_experiment(args)
    # asking for the audit runs it whatever the config says
    cfg = updated(cfg, {"audit.enabled": True, **({"audit.dedupe": True} if args.dedupe else {})})
    folder = RunFolder.of(cfg.output_dir, cfg.name)
    result = run_audit(cfg, build_manifest(cfg, args.data), folder, log_findings=False)
    print(result.summary)
    for text in result.warnings:
        print(f"warning: {text}")
    for row in result.removed:
        print(f"removed: {row['image']} ({row['split']}): {row['reason']}")
    print(f"written: {folder.file('audit')}")
    return 0
