"""Compare two runs on the same cases: the paired DeLong test (binary), or per-class paired DeLong tests with Holm
correction and a paired bootstrap of the macro AUC (multiclass, multilabel)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medfit.evaluate.compare_class_runs import compare_any
from medfit.run_folder import RunFolder, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit compare``."""
    parser.add_argument("run_a", type=RunFolder, help="first run folder")
    parser.add_argument("run_b", type=RunFolder, help="second run folder")
    parser.add_argument("--split", action="append", help="split(s) to compare (default: every non-train split)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the difference's CI")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="paired resamples of the macro AUC difference (multiclass, multilabel)")
    parser.add_argument("--out", help="write the result as JSON here")


def _columns(table: Table, names: tuple[str, ...], level: float) -> None:
    for col in names:
        table.add_column(col.replace("CI", f"{int(level * 100)} % CI"), justify="left" if col in ("split", "class")
                         else "right")


def binary_table(result: dict, title: str, level: float) -> Table:
    """One row per split: n, both AUCs, the difference with its CI, z and p."""
    table = Table(title=f"DeLong paired test: {title}", title_justify="left")
    _columns(table, ("split", "n", "AUC A", "AUC B", "A - B", "CI", "z", "p"), level)
    for split, r in result["splits"].items():
        table.add_row(split, str(r["n"]), f"{r['auc_a']:.3f}", f"{r['auc_b']:.3f}", f"{r['difference']:+.3f}",
                      f"{r['ci'][0]:+.3f} to {r['ci'][1]:+.3f}", f"{r['z']:.2f}", f"{r['p_value']:.4f}")
    return table


def class_table(result: dict, title: str, level: float) -> Table:
    """Per split: one row per class (paired DeLong, Holm-adjusted p) and the macro AUC paired bootstrap."""
    table = Table(title=f"Per-class paired DeLong (Holm) and macro AUC paired bootstrap: {title}", title_justify="left")
    _columns(table, ("split", "class", "n", "AUC A", "AUC B", "A - B", "CI", "p", "p Holm"), level)
    for split, r in result["splits"].items():
        for name, c in r["per_class"].items():
            if c is None:
                table.add_row(split, name, str(r["n"]), *["–"] * 6)
                continue
            table.add_row(split, name, str(r["n"]), f"{c['auc_a']:.3f}", f"{c['auc_b']:.3f}",
                          f"{c['difference']:+.3f}", f"{c['ci'][0]:+.3f} to {c['ci'][1]:+.3f}", f"{c['p_value']:.4f}",
                          f"{c['p_holm']:.4f}")
        m = r["macro"]
        p = "–" if m["p_value"] is None else f"{m['p_value']:.4f}"
        table.add_row(split, "macro (bootstrap)", str(r["n"]), f"{m['auc_macro_a']:.3f}", f"{m['auc_macro_b']:.3f}",
                      f"{m['difference']:+.3f}", f"{m['ci'][0]:+.3f} to {m['ci'][1]:+.3f}", p, "", end_section=True)
    return table


def run(args: argparse.Namespace) -> int:
    """Run ``medfit compare``."""
    result = compare_any(args.run_a, args.run_b, args.split, args.level, args.bootstrap)
    title = f"{args.run_a.path.name} vs {args.run_b.path.name}"
    make = class_table if "class_names" in result else binary_table
    Console(width=None if sys.stdout.isatty() else 160).print(make(result, title, args.level))
    if args.out:
        write_json(Path(args.out), result)
    return 0
