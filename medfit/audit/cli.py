"""Audit a dataset before training: duplicates and near-duplicates across splits, id leaks, label conflicts, shortcuts."""
from __future__ import annotations

import argparse

from medfit.audit.result import AuditError
from medfit.config import load_config

MAX_REMOVED_LINES = 10  # the full list is audit_removed.csv; the counts per class and split are in the summary


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
    try:
        result = run_audit(cfg, manifest, cfg.run_dir, log_findings=False)
    except AuditError as exc:  # leaks or conflicts: the whole audit first, then the error line naming the files
        _print_findings(exc.summary, exc.warnings)
        raise
    _print_findings(result.summary, result.warnings)
    for row in result.removed[:MAX_REMOVED_LINES]:
        print(f"removed: {row['image']} ({row['split']}): {row['reason']}")
    if len(result.removed) > MAX_REMOVED_LINES:
        print(f"removed: ... {len(result.removed) - MAX_REMOVED_LINES} more in {cfg.run_dir / 'audit_removed.csv'}")
    print(f"written: {cfg.run_dir / 'audit.json'}")
    return 0


def _print_findings(summary: str, warnings: list[str]) -> None:
    print(summary)
    for text in warnings:
        print(f"warning: {text}")
