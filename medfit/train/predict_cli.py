"""Predict images, a manifest CSV or a split with a trained run; writes a predictions CSV."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit predict``."""
    parser.add_argument("run", help="trained run folder")
    parser.add_argument("images", nargs="*", help="image files or references to predict")
    parser.add_argument("--manifest", help="CSV with an 'image' column (other columns are kept)")
    parser.add_argument("--split", help="predict this split of the run's manifest")
    parser.add_argument("--out", default=None, help="output CSV (default: <run>/predictions_<name>.csv)")
    parser.add_argument("--onnx", help="run this exported ONNX file (medfit export) instead of the checkpoint")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit predict``."""
    from medfit.data.datasets import ImageDataset
    from medfit.data.manifest import Manifest
    from medfit.errors import DataError
    from medfit.evaluate.run import load_run_config
    from medfit.train.checkpoint import load_trained_model
    from medfit.train.predict import predict_probabilities, predictions_table

    run_dir = Path(args.run)
    cfg = load_run_config(run_dir)
    label_cols = cfg.data.label_columns
    if args.split:
        df = pd.read_csv(run_dir / "manifest.csv")
        df = df[df["split"] == args.split]
    elif args.manifest:
        df = pd.read_csv(args.manifest)
    elif args.images:
        df = pd.DataFrame({"image": args.images})
    else:
        raise DataError("nothing to predict: give image paths, --manifest CSV or --split NAME")
    if df.empty:
        raise DataError("nothing to predict: the selection is empty")
    for col, default in (("patient_id", ""), ("site", ""), ("split", "predict")):
        if col not in df:
            df[col] = default
    for col in label_cols:
        if col not in df:
            df[col] = -1
    manifest = Manifest(df.reset_index(drop=True), label_cols, cfg.data.class_names, cfg.data.task)
    if args.onnx:
        from medfit.models.export import OnnxClassifier

        model = OnnxClassifier(args.onnx)
    else:
        model = load_trained_model(run_dir, cfg)
    dataset = ImageDataset(manifest, cfg, True, "loading")
    probs = predict_probabilities(model, dataset, cfg.data.task, cfg.train.batch_size)
    table = predictions_table(manifest, probs)
    out = Path(args.out) if args.out else run_dir / f"predictions_{args.split or 'new'}.csv"
    table.to_csv(out, index=False)
    print(f"wrote {len(table)} predictions to {out}")
    return 0
