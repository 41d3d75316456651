"""Audit a dataset before training: duplicates and near-duplicates across splits, id leaks, label conflicts, shortcuts."""
from __future__ import annotations

import argparse
import contextlib

from medfit.audit.grouping import split_grouper
from medfit.audit.run import run_audit
from medfit.commands.common import add_cluster_arguments, add_config_arguments, load_experiment
from medfit.config import updated
from medfit.data.manifest import build_manifest
from medfit.preprocess.cluster import cluster_for
from medfit.run_folder import RunFolder

MAX_REMOVED_LINES = 10  # the full list is in the run folder; the counts per class and split are in the summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit audit``."""
    add_config_arguments(parser)
    add_cluster_arguments(parser)
    parser.add_argument("--dedupe", action="store_true",
                        help="drop the training-side copies of cross-split duplicates and leaked ids instead of failing")


def print_findings(summary: str, warnings: list[str]) -> None:
    """The audit's summary line and its warnings."""
    print(summary)
    for text in warnings:
        print(f"warning: {text}")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit audit``: print the summary and the findings, write the audit into the run folder; exit 2 on
    leaks/conflicts (after printing the whole audit)."""
    cfg = load_experiment(args)
    # asking for the audit runs it whatever the config says
    cfg = updated(cfg, {"audit.enabled": True, **({"audit.dedupe": True} if args.dedupe else {})})
    folder = RunFolder.of(cfg.output_dir, cfg.name)
    # leaks or conflicts raise AuditError: the CLI prints its whole audit, then the error line naming the files
    cluster = cluster_for(args.workers, args.cluster)  # fingerprints on Dask workers (None: in this process)
    with cluster or contextlib.nullcontext():
        manifest = build_manifest(cfg, args.data, split_grouper(cfg, cluster))
        result = run_audit(cfg, manifest, folder, log_findings=False, cluster=cluster)
    print_findings(result.summary, result.warnings)
    for row in result.removed[:MAX_REMOVED_LINES]:
        print(f"removed: {row['image']} ({row['split']}): {row['reason']}")
    if len(result.removed) > MAX_REMOVED_LINES:
        print(f"removed: ... {len(result.removed) - MAX_REMOVED_LINES} more in {folder.file('audit_removed')}")
    print(f"written: {folder.file('audit')}")
    return 0
