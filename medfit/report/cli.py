"""Write the HTML report of a run folder."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit report``."""
    parser.add_argument("runs", nargs="+", help="run folder(s)")
    parser.add_argument("--out", help="with several runs: the side-by-side page (default: report-compare.html beside the first run)")
    parser.add_argument("--split", default="test", help="with several runs: the split compared side by side")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit report``."""
    from medfit.report import write_report

    for run_dir in args.runs:
        print(write_report(run_dir))
    if len(args.runs) > 1:
        from pathlib import Path

        from medfit.report.multi import write_multi_report

        out = args.out or Path(args.runs[0]).resolve().parent / "report-compare.html"
        print(write_multi_report(args.runs, out, args.split))
    return 0
