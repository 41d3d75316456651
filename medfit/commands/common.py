"""What every verb that takes a config shares: its arguments (config, --set, --data, --name) and loading them."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from medfit.config import ExperimentConfig, load_config
from medfit.data.manifest import absolute_ref
from medfit.errors import DataError
from medfit.run_folder import RunFolder, check_run_name

DATA_HELP = "base folder for relative data paths (else $MEDFIT_DATA, else data.data_dir, else ../shared/data)"


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str = "experiment YAML file") -> None:
    """The config file, repeatable ``--set KEY=VALUE`` overrides (they accumulate; later ones win), --data, --name."""
    parser.add_argument("config", help=config_help)
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override config keys; repeatable, e.g. --set train.epochs=3 --set model.name=resnet50")
    parser.add_argument("--data", help=DATA_HELP)
    parser.add_argument("--name", help="run name (default: the config's name); a plain folder name inside output_dir")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--cluster ADDRESS`` of verbs that fan their work out over Dask (medfit.preprocess.cluster)."""
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of a local Dask cluster (default 1: serial, in this process)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="join a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers must see the "
                             "images and the cache folder at the same paths)")


def load_experiment(args: argparse.Namespace) -> ExperimentConfig:
    """The config of ``args`` with its overrides and --name applied, checked and frozen."""
    overrides = list(args.overrides) + ([f"name={args.name}"] if args.name else [])
    cfg = load_config(args.config, overrides)
    check_run_name(cfg.name)
    return cfg


def read_rows_csv(path: str | Path) -> pd.DataFrame:
    """Rows to predict or explain from a CSV: an 'image' column (other columns, e.g. slice_index, mask, roi_label, kept),
    image and mask paths made absolute against the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest CSV not found")
    df = pd.read_csv(path)
    if "image" not in df:
        raise DataError(f"{path}: no 'image' column; found {list(df.columns)}")
    df["image"] = [absolute_ref(p, path.parent) for p in df["image"]]
    if "mask" in df:
        df["mask"] = [absolute_ref(p, path.parent) if isinstance(p, str) and p else None for p in df["mask"]]
    return df


def add_run_argument(parser: argparse.ArgumentParser, help: str = "run folder") -> None:
    """The RUN positional of verbs that work on a finished run."""
    parser.add_argument("run", type=RunFolder, help=help)
