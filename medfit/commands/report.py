"""Write the HTML report of a run folder (several runs: also a side-by-side page with DeLong tests)."""
from __future__ import annotations

import argparse

from medfit.report import write_report
from medfit.report.multi import write_multi_report
from medfit.run_folder import RunFolder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit report``."""
    parser.add_argument("runs", nargs="+", type=RunFolder, help="run folder(s)")
    parser.add_argument("--out", help="with several runs: the side-by-side page (default: report-compare.html beside "
                                      "the first run)")
    parser.add_argument("--split", default="test", help="with several runs: the split compared side by side")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit report``."""
    for run_folder in args.runs:
        print(write_report(run_folder))
    if len(args.runs) > 1:
        out = args.out or args.runs[0].path.resolve().parent / "report-compare.html"
        print(write_multi_report(args.runs, out, args.split))
    return 0
