"""Write a review page (one HTML file, no server) of duplicate groups, label issues and out-of-distribution cases."""
from __future__ import annotations

import argparse

from medfit.report.review import write_review


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit review``."""
    parser.add_argument("folders", nargs="+", help="run folders and/or k-fold folders (<name>-cv, with their fold runs)")
    parser.add_argument("--out", help="the page (default: the review page inside the first folder)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many findings of each kind per folder")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit review``."""
    path, items = write_review(args.folders, args.out, args.limit)
    kinds = {k: sum(i["kind"] == k for i in items) for k in ("duplicates", "label issue", "outside training")}
    print(f"review page: {path} ({kinds['duplicates']} duplicate group(s), {kinds['label issue']} label issue(s), "
          f"{kinds['outside training']} case(s) outside the training data); open it in a browser, mark keep / drop / "
          "relabel, download corrections.csv and set data.corrections to it")
    return 0
