"""Train, evaluate and report a small CNN on the real chest X-rays (the README's main command)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from medfit.commands.pipeline import finish_run, train_run
from medfit.config import load_config
from medfit.errors import DataError
from medfit.report.summary import print_summary
from medfit.run_folder import RunFolder

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "chest-xray-demo.yaml"
DATASET = "chest-xray-pneumonia-224"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit demo``."""
    parser.add_argument("--data", help=f"folder holding {DATASET}/ (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="demo config (default: configs/chest-xray-demo.yaml)")
    parser.add_argument("--name", help="run name (default: chest-xray-demo, with a numeric suffix if taken)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override config keys; repeatable")


def find_data_dir(explicit: str | None) -> Path:
    """The folder that holds the demo data set, or a DataError saying what to put where."""
    tried = [p for p in (explicit, os.environ.get("MEDFIT_DATA"), "../shared/data") if p]
    for candidate in tried:
        if (Path(candidate) / DATASET / "train").is_dir():
            return Path(candidate)
    raise DataError(f"the demo needs {DATASET}/train and {DATASET}/test (NORMAL/ and PNEUMONIA/ JPEGs, "
                    f"Kermany et al. 2018); looked in {', '.join(map(str, tried))}. Put the folder there, "
                    f"or pass --data FOLDER or set MEDFIT_DATA")


def free_name(output_dir: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a run folder already holds a finished run."""
    candidate, i = name, 1
    while RunFolder.of(output_dir, candidate).has_checkpoint:
        i += 1
        candidate = f"{name}-{i}"
    return candidate


def run(args: argparse.Namespace) -> int:
    """Run ``medfit demo``."""
    data_dir = find_data_dir(args.data)
    cfg = load_config(args.config, args.overrides)
    name = args.name or free_name(Path(cfg.output_dir), cfg.name)
    cfg = load_config(args.config, [*args.overrides, f"name={name}"])
    print_summary(finish_run(train_run(cfg, data_dir=str(data_dir))))
    return 0
