"""Validation protocols from a config: patient-grouped k-fold cross-validation, or external validation by site."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit validate``."""
    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")
    parser.add_argument("--folds", type=int, help="k-fold cross-validation with this many folds (grouped by patient)")
    parser.add_argument("--train-sites", help="comma-separated sites to train on; every other site is external")
    parser.add_argument("--pseudo-sites", type=int, default=0,
                        help="no site column: split patients into N pseudo-sites by patient-id range first")
    parser.add_argument("--data", help="data folder for relative data.root (default: $MEDFIT_DATA or ../shared/data)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit validate``."""
    from rich.console import Console
    from rich.table import Table

    from medfit.config import load_config
    from medfit.errors import ConfigError
    from medfit.evaluate.protocols import cross_validate, external_validation

    cfg = load_config(args.config, args.overrides)
    console = Console()
    if bool(args.folds) == bool(args.train_sites):
        raise ConfigError("medfit validate: give either --folds K or --train-sites A,B")
    if args.folds:
        res = cross_validate(cfg, args.folds, args.data)
        table = Table(title=res["protocol"], title_justify="left")
        keys = [k for k in ("auc", "sensitivity", "specificity", "accuracy") if k in res["summary"]]
        for col in ("fold", "n", *keys):
            table.add_column(col, justify="right", no_wrap=True)
        for row in res["folds"]:
            table.add_row(str(row["fold"]), str(row["n"]), *(f"{row[k]:.3f}" if row.get(k) is not None else "–" for k in keys))
        table.add_row("mean ± sd", "", *(f"{res['summary'][k]['mean']:.3f} ± {res['summary'][k]['sd']:.3f}" for k in keys))
        console.print(table)
        p = res["pooled"]
        if "auc_ci" in p:
            console.print(f"pooled out-of-fold AUC {p['auc']:.3f} ({p['auc_ci'][0]:.3f}–{p['auc_ci'][1]:.3f}, DeLong), n = {p['n']}")
        return 0
    res = external_validation(cfg, [s.strip() for s in args.train_sites.split(",") if s.strip()], args.data,
                              args.pseudo_sites)
    table = Table(title=res["protocol"], title_justify="left")
    for col in ("split", "site", "role", "n", "auc", "sensitivity", "specificity"):
        table.add_column(col, justify="left" if col in ("split", "site", "role") else "right", no_wrap=True)
    for r in res["rows"]:
        table.add_row(r["split"], r["site"], r.get("role", ""), str(r["n"]),
                      *(f"{r[k]:.3f}" if r.get(k) is not None else "–" for k in ("auc", "sensitivity", "specificity")))
    console.print(table)
    console.print(f"threshold {res['threshold']['method']} on val = {res['threshold']['value']:.4f}, carried to every row; "
                  f"run folder: {res['run']}")
    return 0
