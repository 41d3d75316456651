"""The ``medfit`` command: a thin dispatcher, one verb per pipeline stage."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from medfit.errors import MedfitError, error_lines

# Every verb is medfit.commands.<verb>: add_arguments(parser) and run(args) -> int; its docstring's first line is the
# help. Only the module of the verb that runs is imported (the others' imports cost seconds).
VERBS = ["demo", "preprocess", "audit", "train", "predict", "evaluate", "report", "explain", "compare", "validate",
         "zeroshot", "vlm", "pretrain", "tune", "export", "weights", "review"]


def verb_summary(verb: str) -> str:
    """The first docstring line of a verb's module, read without importing it."""
    spec = importlib.util.find_spec(f"medfit.commands.{verb}")
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    return (doc or verb).strip().splitlines()[0]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: every verb listed, only the verb being run (or all, with no argv) fully built."""
    parser = argparse.ArgumentParser(prog="medfit", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    chosen = [a for a in (argv if argv is not None else VERBS) if a in VERBS][:1] if argv is not None else VERBS
    for verb in VERBS:
        summary = verb_summary(verb)
        p = sub.add_parser(verb, help=summary, description=summary)
        if verb in chosen:
            module = importlib.import_module(f"medfit.commands.{verb}")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    _show_medfit_log()
    try:
        return int(args._run(args) or 0)
    except MedfitError as exc:  # an audit stop prints its whole summary and warnings before the error line
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume (the checkpoint of the last completed epoch is kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
