"""The ``medfit`` command: a thin dispatcher, one verb per pipeline stage."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from medfit.errors import MedfitError

# verb -> module with add_arguments(parser) and run(args) -> int; the first docstring line is the help.
VERBS: dict[str, str] = {
    "demo": "medfit.commands.demo",
    "preprocess": "medfit.preprocess.cli",
    "train": "medfit.train.cli",
    "predict": "medfit.train.predict_cli",
    "evaluate": "medfit.evaluate.cli",
    "report": "medfit.report.cli",
    "pretrain": "medfit.pretrain.cli",
    "explain": "medfit.explain.cli",
    "compare": "medfit.evaluate.compare_cli",
    "validate": "medfit.evaluate.protocols_cli",
    "vlm": "medfit.vlm.cli",
    "zeroshot": "medfit.models.zeroshot_cli",
    "export": "medfit.models.export_cli",
    "tune": "medfit.tune.cli",
    "audit": "medfit.audit.cli",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per verb."""
    parser = argparse.ArgumentParser(prog="medfit", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, module_name in VERBS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or verb).strip().splitlines()[0]
        p = sub.add_parser(verb, help=summary, description=summary)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_medfit_log() -> None:
    """Send medfit's own info lines (e.g. the audit summary) to stderr; once per process, however often main runs."""
    medfit_log = logging.getLogger("medfit")
    if not any(getattr(h, "_medfit_cli", False) for h in medfit_log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._medfit_cli = True
        medfit_log.addHandler(handler)
    medfit_log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run the verb, turn medfit errors into one line and exit code 2."""
    args = build_parser().parse_args(argv)
    _show_medfit_log()
    try:
        return int(args._run(args) or 0)
    except MedfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
