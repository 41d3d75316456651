"""Predict images, a manifest CSV or a split with a trained run; writes a predictions CSV."""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.commands.common import add_run_argument, read_rows_csv
from medfit.config import updated
from medfit.data.covariates import encode_covariates
from medfit.data.datasets import PreparedDataset
from medfit.data.manifest import Manifest, absolute_ref
from medfit.errors import DataError
from medfit.evaluate.conformal_run import prediction_sets
from medfit.evaluate.decisions import decision_columns
from medfit.models.export import OnnxClassifier
from medfit.models.registry import run_covariates
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder, write_csv
from medfit.task import Task
from medfit.train.ensemble import load_members
from medfit.train.features import pooled_features, stacked, tap_features
from medfit.train.ood import load_gate
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
        df = read_rows_csv(args.manifest)
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
    given = set(df.columns)
    for col, default in (("patient_id", ""), ("site", ""), ("split", "predict")):
        if col not in df:
            df[col] = default
    for col in cfg.data.label_columns:
        if col not in df:
            df[col] = -1  # the dataset wants a label; dropped from the output below
    manifest = Manifest(df, list(cfg.data.label_columns), list(cfg.data.class_names), cfg.data.task)
    if args.onnx:  # one exported network: no ensemble members, no dropout to sample
        models, seeds, cfg = [OnnxClassifier(args.onnx)], [cfg.seed], updated(cfg, {"evaluate.mc_dropout": 0})
    else:
        models, seeds = load_members(args.run)
    work = manifest.with_df(df.assign(split="predict"))  # one pass over every row, in the order given
    load, studies = input_loader(cfg, work.df)
    encoder = run_covariates(args.run)  # a run trained with clinical covariates reads them from the same columns
    covariates = encode_covariates(df, encoder, args.manifest or "the rows to predict") if encoder else None
    dataset = PreparedDataset(work, load, True, "loading", np.float16 if studies else np.float32, covariates)
    gate = None if args.onnx else load_gate(args.run)
    with tap_features(models[0]) if gate is not None else nullcontext([]) as batches:
        table = predict_members(models, seeds, work, cfg, ["predict"], {"predict": dataset})  # batches as in training
    features = stacked(batches, len(table))
    if gate is not None and features is None:  # MC-dropout passes or TTA views: the gate reads one plain pass
        features = pooled_features(models[0], dataset, cfg.train.batch_size)
    table["split"] = df["split"].to_numpy()
    add_prediction_sets(table, args.run, Task.of(cfg.data), cfg)
    table = mark_outside(table, gate, features, args)
    table = table.drop(columns=[c for c in ("patient_id", "site", "split", *cfg.data.label_columns) if c not in given])
    table, note = decision_columns(table, manifest.target, args.run.read_json_or("metrics", {}).get("threshold", {}))
    if note:
        print(f"note: {note}")
    name = args.split or "new"
    out = write_csv(Path(args.out), table) if args.out else args.run.write_predictions(table, name)
    print(f"wrote {len(table)} predictions to {out}")
    return 0


def mark_outside(table: pd.DataFrame, gate, features, args: argparse.Namespace) -> pd.DataFrame:
    """The run's out-of-distribution gate applied: ``ood_distance`` and ``outside_training`` columns, one line said."""
    if args.onnx and args.run.has("ood_gate"):
        print("note: the out-of-distribution gate needs the checkpoint's pooled features; not applied with --onnx")
    if gate is None or features is None:
        return table
    distance = gate.distances(features)
    table = table.assign(ood_distance=np.round(distance, 4), outside_training=distance > gate.threshold)
    n = int(table["outside_training"].sum())
    print(f"outside the training data (OOD gate, distance > {gate.threshold:.2f}): {n} of {len(table)}"
          + (": " + ", ".join(table.loc[table["outside_training"], "image"].astype(str).head(5)) if n else ""))
    return table
