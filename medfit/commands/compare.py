"""Compare two runs' AUCs on the same cases with the paired DeLong test."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medfit.evaluate.compare import compare_runs
from medfit.run_folder import RunFolder, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit compare``."""
    parser.add_argument("run_a", type=RunFolder, help="first run folder")
    parser.add_argument("run_b", type=RunFolder, help="second run folder")
    parser.add_argument("--split", action="append", help="split(s) to compare (default: every non-train split)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the difference's CI")
    parser.add_argument("--out", help="write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit compare``."""
    result = compare_runs(args.run_a, args.run_b, args.split, args.level)
    table = Table(title=f"DeLong paired test: {args.run_a.path.name} vs {args.run_b.path.name}", title_justify="left")
    for col in ("split", "n", "AUC A", "AUC B", "A - B", f"{int(args.level * 100)} % CI", "z", "p"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, r in result["splits"].items():
        table.add_row(split, str(r["n"]), f"{r['auc_a']:.3f}", f"{r['auc_b']:.3f}", f"{r['difference']:+.3f}",
                      f"{r['ci'][0]:+.3f} to {r['ci'][1]:+.3f}", f"{r['z']:.2f}", f"{r['p_value']:.4f}")
    Console().print(table)
    if args.out:
        write_json(Path(args.out), result)
    return 0
