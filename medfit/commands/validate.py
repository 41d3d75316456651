"""Validate a config by patient-grouped k-fold cross-validation, by external sites (train on some, test on the rest),
or by a learning curve (train on growing shares of the training patients)."""
from __future__ import annotations

import argparse
from functools import partial

from rich.console import Console
from rich.table import Table

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.commands.pipeline import train_and_evaluate
from medfit.commands.preflight import preflight
from medfit.errors import ConfigError
from medfit.evaluate.learning_curve import FRACTIONS, learning_curve
from medfit.evaluate.protocols import cross_validate, external_validation
from medfit.report import write_report
from medfit.report.protocol import write_cv_report
from medfit.report.learning_curve import learning_curve_page
from medfit.run_folder import ProtocolFolder, RunFolder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit validate``."""
    add_config_arguments(parser)
    parser.add_argument("--folds", type=int, help="k-fold cross-validation with this many folds (grouped by patient)")
    parser.add_argument("--train-sites", help="comma-separated sites to train on; every other site is external")
    parser.add_argument("--pseudo-sites", type=int, default=0,
                        help="no site column: split patients into N pseudo-sites by patient-id range first")
    parser.add_argument("--learning-curve", action="store_true",
                        help="train on growing shares of the training patients; plot val/test AUC against patients")
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)),
                        help="learning curve: comma-separated shares of the training patients (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="learning curve: seeds per share (default %(default)s)")


def _fmt(value) -> str:
    return f"{value:.3f}" if value is not None else "–"


def print_folds(res: dict, console: Console) -> None:
    """The k-fold table: per fold, then mean +- sd, then the pooled out-of-fold AUC."""
    table = Table(title=res["protocol"], title_justify="left")
    keys = [k for k in ("auc", "sensitivity", "specificity", "accuracy") if k in res["summary"]]
    for col in ("fold", "n", *keys):
        table.add_column(col, justify="right", no_wrap=True)
    for row in res["folds"]:
        table.add_row(str(row["fold"]), str(row["n"]), *(_fmt(row.get(k)) for k in keys))
    table.add_row("mean ± sd", "", *(f"{res['summary'][k]['mean']:.3f} ± {res['summary'][k]['sd']:.3f}" for k in keys))
    console.print(table)
    p = res["pooled"]
    if "auc_ci" in p:
        console.print(f"pooled out-of-fold AUC {p['auc']:.3f} ({p['auc_ci'][0]:.3f}–{p['auc_ci'][1]:.3f}, DeLong), "
                      f"n = {p['n']}")
    issues = res.get("label_issues") or {}
    if issues:
        console.print(f"suspected label issues: {issues['flagged']} of {issues['of']} images (confident learning on "
                      "out-of-fold probabilities); lowest label quality first:")
        for row in issues["top"][:5]:
            console.print(f"  #{row['rank']} {row['image']}: given {row['label']} (p {row['p_label']:.2f}), "
                          f"suggested {row['suggested']}", highlight=False)


def print_sites(res: dict, console: Console) -> None:
    """The per-site table of an external validation."""
    table = Table(title=res["protocol"], title_justify="left")
    for col in ("split", "site", "role", "n", "auc", "sensitivity", "specificity"):
        table.add_column(col, justify="left" if col in ("split", "site", "role") else "right", no_wrap=True)
    for r in res["rows"]:
        table.add_row(r["split"], r["site"], r.get("role", ""), str(r["n"]),
                      *(_fmt(r.get(k)) for k in ("auc", "sensitivity", "specificity")))
    console.print(table)
    console.print(f"threshold {res['threshold']['method']} on val = {res['threshold']['value']:.4f}, carried to every "
                  f"row; run folder: {res['run']}")


def print_learning_curve(res: dict, console: Console) -> None:
    """The learning-curve table (val and test AUC per share of the training patients) and its verdict."""
    table = Table(title=res["protocol"], title_justify="left")
    for col in ("share", "patients", "val AUC", "test AUC (CI)", "sd over seeds"):
        table.add_column(col, justify="right", no_wrap=True)
    val = {p["fraction"]: p for p in res["curves"]["val"]}
    for p in res["curves"]["test"]:
        table.add_row(f"{100 * p['fraction']:.0f} %", str(p["patients"]), _fmt((val.get(p["fraction"]) or {}).get("auc")),
                      f"{p['auc']:.3f} ({p['ci'][0]:.3f}–{p['ci'][1]:.3f})", _fmt(p["seed_sd"]))
    console.print(table)
    console.print(f"learning curve {(res.get('summary') or {}).get('message', '')}; folder: {res['folder']}")


def _fractions(text: str) -> list[float]:
    try:
        return [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--fractions {text!r}: expected comma-separated shares, e.g. 0.1,0.25,0.5,1") from None


def run(args: argparse.Namespace) -> int:
    """Run ``medfit validate``."""
    if sum(map(bool, (args.folds, args.train_sites, args.learning_curve))) != 1:
        raise ConfigError("medfit validate: give one of --folds K, --train-sites A,B or --learning-curve")
    cfg = load_experiment(args)
    preflight(cfg, args.data, needs=("train",) if args.folds else (), run_folder=False)
    fit = partial(train_and_evaluate, data_dir=args.data)
    if args.learning_curve:
        res = learning_curve(cfg, args.data, fit, _fractions(args.fractions), tuple(range(args.seeds)))
        folder = ProtocolFolder(res["folder"])
        folder.write_text("learning_curve_report", learning_curve_page(res, folder.read_csv("learning_curve_table")))
        print_learning_curve(res, Console())
        return 0
    if args.folds:
        res = cross_validate(cfg, args.folds, args.data, fit)
        print_folds(res, Console())
        print(f"report: {write_cv_report(ProtocolFolder(res['folder']))}")
        return 0
    sites = [s.strip() for s in args.train_sites.split(",") if s.strip()]
    res = external_validation(cfg, sites, args.data, fit, args.pseudo_sites)
    write_report(RunFolder(res["run"]))
    print_sites(res, Console())
    return 0
