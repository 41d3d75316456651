"""Audit a dataset before training: duplicates and near-duplicates across splits, id leaks, label conflicts, shortcuts."""
from __future__ import annotations

import argparse

from medfit.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit audit``."""
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--dedupe", action="store_true",
                        help="drop the training-side copies of cross-split duplicates and leaked ids instead of failing")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys, e.g. audit.near_threshold=24")
    parser.add_argument("--name", help="run name (default: the config's name); audit.json goes in its run folder")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit audit``: print the summary and the findings, write <run_dir>/audit.json; exit 2 on leaks/conflicts."""
    from medfit.audit.run import run_audit
    from medfit.data.manifest import build_manifest

    overrides = args.set + ([f"name={args.name}"] if args.name else []) + (["audit.dedupe=true"] if args.dedupe else [])
    cfg = load_config(args.config, overrides)
    cfg.audit.enabled = True  # asking for the audit runs it whatever the config says
    manifest = build_manifest(cfg, args.data)
    # leaks or conflicts: DataError naming the files and audit.json
    result = run_audit(cfg, manifest, cfg.run_dir, log_findings=False)
    print(result.summary)
    for text in result.warnings:
        print(f"warning: {text}")
    for row in result.removed:
        print(f"removed: {row['image']} ({row['split']}): {row['reason']}")
    print(f"written: {cfg.run_dir / 'audit.json'}")
    return 0
