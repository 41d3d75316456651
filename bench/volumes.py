"""AdrenalMNIST3D (official splits): 2.5D vs slice-set MIL vs 3D CNN, each trained through medfit's pipeline (train_run).

Prints test AUC and ACC (threshold 0.5, the MedMNIST convention, and the val-Youden threshold) per mode, with time and the AUC ratio against the
plain single-slice baseline (the centre slice through the same 2D network) trained in the same process.
MedMNIST v2 (Yang et al. 2023) reports on AdrenalMNIST3D: ResNet-18+2.5D AUC 0.718, ResNet-18+3D 0.827,
ResNet-50+3D 0.828 (ACC 0.721 / 0.721 / 0.745).

    OMP_NUM_THREADS=2 python bench/volumes.py --size 28 --epochs 6
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision shim before timm/lightning)
import numpy as np
from sklearn.metrics import roc_auc_score

from medfit.commands.pipeline import train_run
from medfit.config import ExperimentConfig, config_from_dict
from medfit.evaluate.metrics import choose_threshold
from medfit.run_folder import RunFolder

MODES = ("slice", "2.5d", "slice_set", "3d")


def make_cfg(args, mode: str, out: Path) -> ExperimentConfig:
    """One mode's experiment on the .npz of the chosen size."""
    epochs = dict(kv.split("=") for kv in args.mode_epochs.split(",") if kv).get(mode, args.epochs)
    if mode == "3d":  # a MONAI 3D network on the whole volume
        model = {"kind": "monai3d", "name": args.net3d,
                 "kwargs": {"conv1_t_size": 3, "conv1_t_stride": 1, "widen_factor": args.widen}}
    else:
        model = {"kind": "timm", "name": args.net2d, "drop_rate": 0.1}
    return config_from_dict({
        "name": f"adrenal{args.size}-{mode}", "output_dir": str(out), "seed": args.seed,
        "data": {"source": "medmnist", "task": "binary", "image_size": args.size, "limit_per_split": args.limit,
                 "root": f"adrenalmnist3d/adrenalmnist3d{'' if args.size == 28 else '_64'}.npz"},
        "model": model,
        "train": {"epochs": int(epochs), "batch_size": args.batch_size, "optim": {"lr": args.lr}, "logger": "none",
                  "progress_bar": False,
                  # binary shape masks: no intensity jitter
                  "augment": {"rotate_degrees": 10.0, "translate": 0.05, "scale": [0.9, 1.1], "brightness": 0.0,
                              "contrast": 0.0}},
        "volume": {"mode": mode, "key_slice": "centre",
                   "neighbours": 0 if mode == "slice" else args.k,  # the baseline: the centre slice alone
                   "slices": args.slices if mode == "slice_set" else 0},  # 3d keeps every slice
    })


def scores(run: RunFolder) -> dict:
    """Test AUC and ACC (threshold 0.5) from the run's predictions."""
    pred = run.read_predictions()
    test, val = pred[pred["split"] == "test"], pred[pred["split"] == "val"]
    y, p = test["label"].to_numpy(), test["prob"].to_numpy()
    # The class-weighted loss shifts probabilities up, so also the ACC at the val-chosen (Youden) threshold.
    t = choose_threshold(val["label"].to_numpy(), val["prob"].to_numpy(), "youden")
    return {"n": len(test), "auc": float(roc_auc_score(y, p)), "acc": float(np.mean((p >= 0.5) == y)),
            "acc_val_t": float(np.mean((p >= t) == y))}


def main() -> None:
    """Train every requested mode and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=28, choices=[28, 64])
    ap.add_argument("--modes", default="slice,2.5d,slice_set,3d", help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--mode-epochs", default="", help="per-mode epochs overriding --epochs, e.g. slice_set=2,3d=3")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--limit", type=int, default=0, help=">0: at most this many studies per split (quick runs)")
    ap.add_argument("--k", type=int, default=2, help="2.5D: neighbours each side")
    ap.add_argument("--slices", type=int, default=0, help="slice_set: slices per study, evenly spaced (0: all)")
    ap.add_argument("--net2d", default="resnet10t", help="timm network of slice, 2.5D and the MIL encoder")
    ap.add_argument("--net3d", default="resnet10", help="MONAI 3D network")
    ap.add_argument("--widen", type=float, default=0.5, help="MONAI ResNet widen_factor")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="", help="run folder parent (default: a temporary folder)")
    args = ap.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-volumes-"))
    rows = []
    for mode in args.modes.split(","):
        cfg = make_cfg(args, mode, out)
        t0 = time.perf_counter()
        run = train_run(cfg, data_dir=args.data)
        info = run.read_json("train_info")
        rows.append({"mode": mode, **scores(run), "params": info["parameters"]["trainable"],
                     "seconds": time.perf_counter() - t0})
        r = rows[-1]
        print(f"  {mode:9s} test AUC {r['auc']:.3f}  ACC {r['acc']:.3f} / {r['acc_val_t']:.3f}  {r['seconds']:.0f} s",
              flush=True)

    base = next((r["auc"] for r in rows if r["mode"] == "slice"), None)
    print(f"\nAdrenalMNIST3D {args.size}^3, epochs {args.epochs} {args.mode_epochs}, official splits"
          f"{f', {args.limit} studies per split' if args.limit else ''} (test n={rows[0]['n']})")
    print(f"{'mode':10s} {'AUC':>6s} {'ACC':>6s} {'ACC@val-t':>9s} {'AUC/slice':>9s} {'params':>10s} {'seconds':>8s}")
    for r in rows:
        ratio = f"{r['auc'] / base:.3f}" if base else "-"
        print(f"{r['mode']:10s} {r['auc']:6.3f} {r['acc']:6.3f} {r['acc_val_t']:9.3f} {ratio:>9s} {r['params']:10,d} {r['seconds']:8.0f}")
    best = max(rows, key=lambda r: r["auc"])
    print(f"best: {best['mode']} AUC {best['auc']:.3f} (target >= 0.85; MedMNIST v2 ResNet-18+3D 0.827)")


if __name__ == "__main__":
    main()
