"""Write the HTML report of a run folder."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit report``."""
    parser.add_argument("runs", nargs="+", help="run folder(s)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit report``."""
    from medfit.report import write_report

    for run_dir in args.runs:
        print(write_report(run_dir))
    return 0
