"""Predict images, a manifest CSV or a split with a trained run; writes a predictions CSV."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.commands.common import add_run_argument
from medfit.config import updated
from medfit.data.datasets import PreparedDataset
from medfit.data.manifest import Manifest, absolute_ref
from medfit.errors import DataError
from medfit.evaluate.conformal_run import prediction_sets
from medfit.models.export import OnnxClassifier
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder, write_csv
from medfit.task import Task
from medfit.train.ensemble import load_members
from medfit.train.uncertainty import predict_members


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit predict``."""
    add_run_argument(parser, "trained run folder")
    parser.add_argument("images", nargs="*", help="image files or references to predict")
    parser.add_argument("--manifest", help="CSV with an 'image' column (other columns, e.g. slice_index/mask, are used "
                                           "and kept)")
    parser.add_argument("--split", help="predict this split of the run's manifest")
    parser.add_argument("--out", default=None, help="output CSV (default: in the run folder, named after the input)")
    parser.add_argument("--onnx", help="run this exported ONNX file (medfit export) instead of the checkpoint")


def rows_to_predict(args: argparse.Namespace) -> pd.DataFrame:
    """The rows asked for: a split of the run's manifest, a manifest CSV (paths made absolute), or image refs."""
    if args.split:
        df = args.run.read_manifest()
        df = df[df["split"] == args.split]
    elif args.manifest:
        path = Path(args.manifest)
        if not path.is_file():
            raise DataError(f"{path}: manifest CSV not found")
        df = pd.read_csv(path)
        if "image" not in df:
            raise DataError(f"{path}: no 'image' column; found {list(df.columns)}")
        df["image"] = [absolute_ref(p, path.parent) for p in df["image"]]
        if "mask" in df:
            df["mask"] = [absolute_ref(p, path.parent) if isinstance(p, str) and p else None for p in df["mask"]]
    elif args.images:
        df = pd.DataFrame({"image": [absolute_ref(p, Path.cwd()) for p in args.images]})
    else:
        raise DataError("nothing to predict: give image paths, --manifest CSV or --split NAME")
    if df.empty:
        raise DataError("nothing to predict: the selection is empty")
    return df.reset_index(drop=True)


def add_prediction_sets(table: pd.DataFrame, run: RunFolder, task: Task, cfg) -> None:
    """The conformal set of each row next to its probability (calibrated on the run's validation predictions)."""
    if not cfg.evaluate.conformal_alpha or task.is_multilabel or not run.has("predictions"):
        return
    val = run.read_predictions()
    val = val[val["split"] == "val"]
    if len(val):
        at = table.columns.get_loc(task.probability_columns[-1]) + 1
        table.insert(at, "prediction_set", prediction_sets(val, table, task, cfg.evaluate))


def run(args: argparse.Namespace) -> int:
    """Run ``medfit predict``."""
    cfg = args.run.read_config()
    df = rows_to_predict(args)
    for col, default in (("patient_id", ""), ("site", ""), ("split", "predict")):
        if col not in df:
            df[col] = default
    for col in cfg.data.label_columns:
        if col not in df:
            df[col] = -1
    manifest = Manifest(df, list(cfg.data.label_columns), list(cfg.data.class_names), cfg.data.task)
    if args.onnx:  # one exported network: no ensemble members, no dropout to sample
        models, seeds, cfg = [OnnxClassifier(args.onnx)], [cfg.seed], updated(cfg, {"evaluate.mc_dropout": 0})
    else:
        models, seeds = load_members(args.run)
    work = manifest.with_df(df.assign(split="predict"))  # one pass over every row, in the order given
    load, studies = input_loader(cfg, work.df)
    dataset = PreparedDataset(work, load, True, "loading", np.float16 if studies else np.float32)
    table = predict_members(models, seeds, work, cfg, ["predict"], {"predict": dataset})  # batches as in training runs
    table["split"] = df["split"].to_numpy()
    add_prediction_sets(table, args.run, Task.of(cfg.data), cfg)
    name = args.split or "new"
    out = write_csv(Path(args.out), table) if args.out else args.run.write_predictions(table, name)
    print(f"wrote {len(table)} predictions to {out}")
    return 0
