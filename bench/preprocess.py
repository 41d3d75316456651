"""Preprocessing speed: N4 bias-field correction, loader throughput cold vs cached, and data wait in a training step.

Measures, on the real images in ../shared/data, in one process:

1. N4 (``medfit.preprocess.bias.n4_correct``, SimpleITK) on the spine MRI volumes: seconds per 2D sagittal slice
   and per 3D volume (shrink factor 4, the default; ``--full-volume`` adds one volume unshrunk, ~400 s).
2. Loader throughput of ``medfit.preprocess.load_prepared`` (images/s): the ``radiograph`` recipe on chest
   X-rays and the ``mri-ovcf`` recipe on vertebral-body key slices, first epoch (empty cache, fresh temp folder)
   against a second epoch over the same items (cache warm); the plain baseline is the same images read and resized
   with no recipe and no cache.
3. The share of training-step time spent blocked in ``next(iterator)`` once the cache is warm (target < 5 %):
   medfit's ``dataset_for`` + ``make_loader`` (images preloaded from the cache) and, for comparison, a lazy
   dataset that reads each cached entry in ``__getitem__``; timm resnet18 at 64 px, batch 32, 20 timed AdamW steps.

Figures print as plain lines and ratios (cached / first epoch, cached / plain); no timing is asserted.

    OMP_NUM_THREADS=2 python bench/preprocess.py [--images 256] [--volumes 1] [--slices 4] [--ovcf-rows 12]
        [--steps 20] [--size 64] [--full-volume] [--out figures.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision shim before timm)
import numpy as np
import SimpleITK as sitk
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from medfit.config import config_from_dict
from medfit.data.manifest import manifest_from_folder_tree
from medfit.data.rows import Row
from medfit.data.slices import key_slice_from_mask
from medfit.data.splits import limit_per_split
from medfit.io import read_volume
from medfit.preprocess import Recipe, bias, load_prepared, prepare, recipes
from medfit.train.fit import make_loader
from medfit.train.inputs import dataset_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET_WAIT = 0.05


def spine_pairs(root: Path, n: int) -> list[tuple[Path, Path]]:
    """The first ``n`` (image, vertebral-body mask) NIfTI pairs, smallest volumes first (quick default runs)."""
    images = [p for p in sorted(root.glob("*.nii.gz")) if not p.name.endswith("_vbmask.nii.gz")]
    pairs = [(p, p.with_name(p.name.replace(".nii.gz", "_vbmask.nii.gz"))) for p in images]
    pairs.sort(key=lambda pair: pair[0].stat().st_size)
    return pairs[:n]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Wall seconds of one call and its result."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def bench_n4(pairs, n_slices: int, shrink: int, full_volume: bool) -> dict:
    """N4 seconds per sagittal slice (middle ``n_slices`` of each volume) and per whole volume."""
    per_slice, per_volume, depths, slice_shapes, full = [], [], [], set(), None
    for image, _ in pairs:
        vol = read_volume(str(image))
        arr = vol.array.astype(np.float32)
        mid = arr.shape[0] // 2
        for idx in range(mid - n_slices // 2, mid - n_slices // 2 + n_slices):
            per_slice.append(timed(bias.n4_correct, arr[idx], vol.spacing[1:], shrink=shrink)[0])
            slice_shapes.add(arr[idx].shape)
        per_volume.append(timed(bias.n4_correct, arr, vol.spacing, shrink=shrink)[0])
        depths.append(arr.shape[0])
    if full_volume:
        vol = read_volume(str(pairs[0][0]))
        full = timed(bias.n4_correct, vol.array.astype(np.float32), vol.spacing, shrink=1)[0]
    slice_s, volume_s = statistics.median(per_slice), statistics.median(per_volume)
    depth = int(statistics.median(depths))
    return {"shrink": shrink, "slices_timed": len(per_slice), "volumes_timed": len(per_volume),
            "slice_shapes": sorted(slice_shapes), "n4_s_per_slice": slice_s, "n4_s_per_volume": volume_s,
            "n4_s_per_volume_runs": per_volume, "slices_per_volume": depth,
            "volume_vs_slice_by_slice": volume_s / (slice_s * depth), "n4_s_per_volume_no_shrink": full}


def make_cfg(out: Path, recipe: str, cache_dir: str, size: int, batch: int = 32):
    """An experiment config with this recipe and cache folder (augmentation off: only data and model cost)."""
    return config_from_dict({
        "output_dir": str(out), "name": "bench-preprocess",
        "data": {"image_size": size, "channels": 1},
        "preprocess": {"recipe": recipe, "cache_dir": cache_dir},
        "train": {"batch_size": batch, "logger": "none", "progress_bar": False, "class_balance": "none"},
    })


def epoch_rate(rows: list[dict], cfg) -> tuple[float, float]:
    """One pass of ``load_prepared`` over the rows: (images/s, seconds)."""
    recipe = Recipe.of_experiment(cfg)
    t0 = time.perf_counter()
    for row in rows:
        load_prepared(Row.of(row), recipe)
    seconds = time.perf_counter() - t0
    return len(rows) / seconds, seconds


def plain_rate(rows: list[dict], size: int) -> float:
    """Images/s of the plain baseline: read + resize with no recipe and no cache (``preprocess.prepare``)."""
    recipe = Recipe.of(config_from_dict({}).preprocess, size, 1, cache_dir="")
    t0 = time.perf_counter()
    for row in rows:
        prepare(Row.of(row), recipe)
    return len(rows) / (time.perf_counter() - t0)


def bench_loader(name: str, rows: list[dict], recipe: str, tmp: Path, size: int) -> dict:
    """First epoch (empty cache) against a second cached epoch over the same rows, and the plain baseline."""
    cache = tmp / f"cache-{name}"
    cfg = make_cfg(tmp, recipe, str(cache), size)
    recipes._N4_MEMO.clear()  # the first epoch must not reuse N4 fits from earlier sections
    plain = plain_rate(rows, size)
    first, first_s = epoch_rate(rows, cfg)
    cached, cached_s = epoch_rate(rows, cfg)
    entries = sum(1 for _ in cache.rglob("*.npz"))
    return {"recipe": recipe, "items": len(rows), "cache_entries": entries, "plain_img_per_s": plain,
            "first_epoch_img_per_s": first, "first_epoch_s": first_s, "cached_epoch_img_per_s": cached,
            "cached_epoch_s": cached_s, "cached_vs_first": cached / first, "cached_vs_plain": cached / plain}


def xray_rows(root: Path, n: int) -> list[dict]:
    """``n`` chest X-ray rows from the training split (both classes, fixed seed)."""
    manifest = limit_per_split(manifest_from_folder_tree(root), n).split("train")
    return [{"image": ref} for ref in manifest.df["image"]]


def ovcf_rows(pairs, n: int) -> list[dict]:
    """One row per vertebral body (key slice = the label's largest area), up to ``n`` rows."""
    rows = []
    for image, mask in pairs:
        labels = read_volume(str(mask)).array
        for label in [int(v) for v in np.unique(labels) if v > 0]:
            rows.append({"image": str(image), "mask": str(mask), "roi_label": label,
                         "slice_index": key_slice_from_mask(labels, label, str(mask))})
    return rows[:n]


class LazyCached(Dataset):
    """Reads every item from the warm cache in ``__getitem__`` (no preloading): the per-step cost of a cache read."""

    def __init__(self, rows: list[dict], labels: torch.Tensor, cfg):
        self.rows, self.labels, self.recipe = [Row.of(r) for r in rows], labels, Recipe.of_experiment(cfg)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return torch.from_numpy(load_prepared(self.rows[i], self.recipe)), self.labels[i], i


def data_wait(loader, model, opt, steps: int, warmup: int = 2) -> dict:
    """Train ``steps`` steps (after ``warmup``): seconds blocked in ``next(iterator)`` and seconds per step."""
    model.train()
    wait = total = 0.0
    it, done = iter(loader), 0
    while done < steps + warmup:
        t0 = time.perf_counter()
        try:
            x, y, _ = next(it)
        except StopIteration:  # a new epoch: starting its iterator counts as waiting on data
            it = iter(loader)
            x, y, _ = next(it)
        t1 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y.view(-1, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if done >= warmup:
            wait, total = wait + (t1 - t0), total + (t2 - t0)
        done += 1
    return {"steps": steps, "wait_s": wait, "step_s": total / steps, "wait_share": wait / total}


def bench_wait(root: Path, n: int, tmp: Path, size: int, batch: int, steps: int, model_name: str) -> dict:
    """Data-wait share with the radiograph cache warm: medfit's dataset_for loader and a lazy cached dataset."""
    cfg = make_cfg(tmp, "radiograph", str(tmp / "cache-radiograph"), size, batch)
    manifest = limit_per_split(manifest_from_folder_tree(root), n).split("train")
    build_s, dataset = timed(dataset_for, manifest, cfg, False)
    loader = make_loader(dataset, cfg, train=True)
    lazy = DataLoader(LazyCached([{"image": r} for r in manifest.df["image"]], dataset.labels, cfg),
                      batch_size=batch, shuffle=True, num_workers=cfg.data.num_workers)
    out = {"images": len(dataset), "model": model_name, "batch": batch, "size": size,
           "dataset_build_s": build_s, "num_workers": cfg.data.num_workers}
    for name, dl in (("medfit_dataset_for", loader), ("lazy_cached_reads", lazy)):
        torch.manual_seed(0)
        model = timm.create_model(model_name, in_chans=1, num_classes=1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        out[name] = data_wait(dl, model, opt, steps)
    return out


def report(fig: dict) -> None:
    """Print the figures as plain lines."""
    n4 = fig.get("n4")
    print(f"threads: torch {torch.get_num_threads()}, SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}")
    if n4:
        print(f"N4 (shrink {n4['shrink']}) per 2D slice  : {n4['n4_s_per_slice']:.2f} s  "
              f"(median of {n4['slices_timed']} slices, shapes {n4['slice_shapes']})")
        print(f"N4 (shrink {n4['shrink']}) per 3D volume : {n4['n4_s_per_volume']:.2f} s  "
              f"(median of {n4['volumes_timed']}: {['%.1f' % s for s in n4['n4_s_per_volume_runs']]})")
        print(f"N4 3D volume / slice-by-slice ({n4['slices_per_volume']} slices): "
              f"{n4['volume_vs_slice_by_slice']:.2f}")
        if n4["n4_s_per_volume_no_shrink"] is not None:
            print(f"N4 (no shrink) per 3D volume: {n4['n4_s_per_volume_no_shrink']:.1f} s  "
                  f"(ratio to shrink {n4['shrink']}: {n4['n4_s_per_volume_no_shrink'] / n4['n4_s_per_volume']:.1f})")
    for key in ("loader_radiograph", "loader_mri_ovcf"):
        r = fig.get(key)
        if not r:
            continue
        print(f"loader {r['recipe']:<10} {r['items']} items: plain {r['plain_img_per_s']:.1f} img/s | "
              f"first epoch {r['first_epoch_img_per_s']:.1f} img/s ({r['first_epoch_s']:.1f} s) | "
              f"cached {r['cached_epoch_img_per_s']:.1f} img/s ({r['cached_epoch_s']:.2f} s)")
        print(f"loader {r['recipe']:<10} ratio cached / first epoch: {r['cached_vs_first']:.1f}x, "
              f"cached / plain: {r['cached_vs_plain']:.2f}x  ({r['cache_entries']} cache entries)")
    w = fig.get("data_wait")
    if w:
        print(f"training {w['model']} {w['size']}px batch {w['batch']}, {w['images']} images, "
              f"num_workers {w['num_workers']} (dataset_for from the warm cache in {w['dataset_build_s']:.2f} s)")
        for name in ("medfit_dataset_for", "lazy_cached_reads"):
            r = w[name]
            verdict = "PASS" if r["wait_share"] < TARGET_WAIT else "FAIL"
            print(f"data wait {name:<20}: {r['wait_share']:.1%} of step time ({r['wait_s'] / r['steps'] * 1000:.1f} "
                  f"of {r['step_s'] * 1000:.1f} ms/step, {r['steps']} steps)  {verdict} (target < {TARGET_WAIT:.0%})")


def main() -> int:
    """Run the sections that have data, print the figures, optionally write them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--images", type=int, default=256, help="chest X-rays for the loader and training sections")
    ap.add_argument("--volumes", type=int, default=1, help="spine MRI volumes for N4 per volume (~20 s each)")
    ap.add_argument("--slices", type=int, default=4, help="middle slices per volume for N4 per slice")
    ap.add_argument("--shrink", type=int, default=4, help="N4 shrink factor")
    ap.add_argument("--full-volume", action="store_true", help="also one volume with no shrink (~400 s)")
    ap.add_argument("--ovcf-rows", type=int, default=12, help="vertebra rows for the mri-ovcf loader (0: skip)")
    ap.add_argument("--ovcf-volumes", type=int, default=2, help="spine volumes the mri-ovcf rows come from")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per loader")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: n4, loader, wait")
    ap.add_argument("--out", default="", help="write the figures to this JSON file")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    xray, spine = Path(args.data) / "chest-xray-pneumonia-224", Path(args.data) / "spine-mri-vb-sagittal"
    tmp = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    fig: dict = {"args": vars(args)}
    try:
        if "n4" not in skip and spine.is_dir() and args.volumes > 0:
            fig["n4"] = bench_n4(spine_pairs(spine, args.volumes), args.slices, args.shrink, args.full_volume)
        if "loader" not in skip and xray.is_dir():
            fig["loader_radiograph"] = bench_loader("radiograph", xray_rows(xray, args.images), "radiograph",
                                                    tmp, args.size)
        if "loader" not in skip and spine.is_dir() and args.ovcf_rows > 0:
            rows = ovcf_rows(spine_pairs(spine, args.ovcf_volumes), args.ovcf_rows)
            fig["loader_mri_ovcf"] = bench_loader("mri-ovcf", rows, "mri-ovcf", tmp, args.size)
        if "wait" not in skip and xray.is_dir():
            fig["data_wait"] = bench_wait(xray, args.images, tmp, args.size, args.batch, args.steps, args.model)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(fig) == 1:
        print(f"skipped: no data under {args.data}")
        return 0
    report(fig)
    if args.out:
        Path(args.out).write_text(json.dumps(fig, indent=2, default=str))
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
