"""Where the chest X-ray demo loses against PneumoniaMNIST: the aspect ratio its uploader squashed away.

The demo's JPEGs are Kermany's originals squashed to 224x224; PneumoniaMNIST holds the same images centre-cropped
to a square at their own aspect ratio. Matching every JPEG to its PneumoniaMNIST copy (normalised correlation at
28 px, over centre crops keeping a share f of the JPEG's columns) recovers f = height / width of the original. The
script prints f per split and class and, given run folders, the test NORMALs' predicted probability of pneumonia
and their specificity at the run's validation threshold by f: if the classes' originals differ in shape, the squash
is a class cue that does not carry to test.

    python bench/demo_aspect.py [--data ../shared/data] [--run runs/chest-xray-demo ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import medfit  # noqa: F401  (torchvision shim before timm/lightning)
import cv2
import numpy as np
import pandas as pd
from PIL import Image

from medfit.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHARES = np.round(np.arange(0.50, 1.001, 0.025), 3)  # shares of the columns kept (f = 1: the whole JPEG)
BINS = [0.5, 0.65, 0.75, 0.85, 1.01]


def unit_rows(images: np.ndarray) -> np.ndarray:
    """Each image as a zero-mean unit-norm row (correlation becomes a dot product)."""
    rows = images.reshape(len(images), -1).astype(np.float32)
    rows -= rows.mean(1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


def centre_columns(image: np.ndarray, share: float, size: int = 28) -> np.ndarray:
    """The middle ``share`` of the columns, resized to size x size (area averaging, as MedMNIST shrinks)."""
    k = int(round(image.shape[1] * (1 - share) / 2))
    return cv2.resize(image[:, k:image.shape[1] - k], (size, size), interpolation=cv2.INTER_AREA)


def original_shapes(jpegs: list[np.ndarray], mnist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per JPEG: the column share whose crop best matches a PneumoniaMNIST image, and that best correlation."""
    targets = unit_rows(mnist)
    scores = np.stack([(unit_rows(np.stack([centre_columns(j, s) for j in jpegs])) @ targets.T).max(1)
                       for s in SHARES], 1)
    return SHARES[scores.argmax(1)], scores.max(1)


def split_shapes(data: Path) -> pd.DataFrame:
    """One row per JPEG of train/ and test/: split, class, the recovered share f and the match's correlation."""
    npz = np.load(data / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz")
    frames = []
    for split in ("train", "test"):
        files = sorted((data / "chest-xray-pneumonia-224" / split).glob("*/*.jpeg"))
        jpegs = [np.asarray(Image.open(f).convert("L")) for f in files]
        mnist = npz[f"{split}_images"] if split == "test" else np.concatenate([npz["train_images"], npz["val_images"]])
        share, corr = original_shapes(jpegs, mnist)
        frames.append(pd.DataFrame({"image": [str(f) for f in files], "split": split,
                                    "cls": [f.parent.name for f in files], "f": share, "corr": corr}))
    return pd.concat(frames, ignore_index=True)


def print_shapes(shapes: pd.DataFrame) -> None:
    """Quantiles of f per split and class, and how well the matches fit."""
    print(f"matched {len(shapes)} JPEGs to PneumoniaMNIST: median correlation {shapes['corr'].median():.3f}, "
          f"{(shapes['corr'] < 0.9).mean():.1%} below 0.9")
    print(f"{'split':<7}{'class':<11}{'n':>6}  f = original height / width: 10 % 25 % 50 % 75 % 90 %")
    for (split, cls), g in shapes.groupby(["split", "cls"]):
        q = np.quantile(g["f"], [0.1, 0.25, 0.5, 0.75, 0.9])
        print(f"{split:<7}{cls:<11}{len(g):>6}  " + " ".join(f"{v:.3f}" for v in q))


def print_run(run_path: Path, shapes: pd.DataFrame) -> None:
    """A run's test NORMALs by f: median probability of pneumonia, specificity at the run's threshold."""
    run = RunFolder(run_path)
    threshold = run.read_json("metrics")["threshold"]["value"]
    pred = pd.read_csv(run.file("predictions"))
    test = pred[(pred["split"] == "test") & (pred["label"] == 0)].merge(shapes[["image", "f"]], on="image")
    test["f bin"] = pd.cut(test["f"], BINS)
    table = test.groupby("f bin", observed=True)["prob"].agg(n="count", median_prob="median",
                                                             specificity=lambda p: float((p < threshold).mean()))
    rho = test[["f", "prob"]].corr(method="spearman").iloc[0, 1]
    print(f"\n{run_path.name}: test NORMALs (threshold {threshold:.3f}), Spearman(f, prob) {rho:+.2f}")
    print(table.round(3).to_string())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--run", type=Path, nargs="*", default=[], help="run folders of the demo to break down by f")
    p.add_argument("--out", type=Path, help="write the per-image shares as CSV")
    args = p.parse_args(argv)
    if not (args.data / "pneumoniamnist").is_dir():
        print(f"skipped: {args.data}/pneumoniamnist not found")
        return 0
    shapes = split_shapes(args.data)
    print_shapes(shapes)
    for run in args.run:
        print_run(run, shapes)
    if args.out:
        shapes.to_csv(args.out, index=False)
        print(json.dumps({"written": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
