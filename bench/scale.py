"""medfit beyond one process: preprocessing on Dask at 1 and 2 workers, streamed vs in-memory training data, and an
estimate for a 1-million-file CT cohort from the measured per-item costs.

1. Preprocessing throughput (``medfit preprocess``'s own fill functions): N4 + crop (recipe ``mri-ovcf``) on slices of
   the shared spine MRI, CLAHE + unsharp (``radiograph``) on the chest X-rays. Each repeat runs the serial loop in this
   process (the plain baseline), then a warm 1-worker and a warm 2-worker local Dask cluster (interleaved; the order
   turns every repeat), each into a fresh cache folder; prints items/s (min and median of the repeats), the speed-up
   ratios and whether every cache entry is bit-identical to the serial one. Cluster start-up is printed on its own.
2. Training data: one training epoch (bare PyTorch loop, resnet10t) from the in-memory dataset and from the streamed
   shard, interleaved; the ratio stream / memory of the per-step times (target <= 1.10). Peak RSS is measured in a
   fresh process per (storage, size) at 1x and 4x the dataset (the manifest repeated): what the dataset adds to the
   process after imports.
3. The estimate: per-file costs measured on the shared head CT series (fingerprint, series read + window + sagittal
   reformat + a 2.5D input) scaled to 1,000,000 files with the measured 2-worker parallel efficiency.

    nice -n 10 python bench/scale.py [--quick] [--repeats 3]
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision import hook)
import numpy as np
import pandas as pd
import psutil
import timm
import torch
import torch.nn.functional as F

from medfit.audit.fingerprint import fingerprint
from medfit.commands.preprocess import fill_on_cluster, fill_serially
from medfit.config import PreprocessConfig, config_from_dict
from medfit.data.manifest import manifest_from_folder_tree
from medfit.data.rows import Row
from medfit.data.splits import limit_per_split
from medfit.preprocess import Recipe, cache, load_prepared, prepared, recipes
from medfit.preprocess.cache import file_digest
from medfit.preprocess.cluster import Cluster
from medfit.train.fit import make_loader
from medfit.train.inputs import dataset_for

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPINE_CSV = Path(__file__).resolve().parents[1] / "configs" / "ovcf-mri.csv"
XRAYS = SHARED / "chest-xray-pneumonia-224"
CT_SERIES = SHARED / "ct-head-dicom-series-ge" / "series"
COHORT_FILES = 1_000_000
TARGET_STREAM = 1.10


def prepare_row(recipe: Recipe, row) -> np.ndarray:
    """How `medfit preprocess` prepares a plain row (``input_loader``'s loader without a config)."""
    return load_prepared(Row.of(row), recipe)


def spine_rows(n: int) -> pd.DataFrame:
    """``n`` key-slice rows of the shared spine MRI, one per volume first (a file is one task)."""
    df = pd.read_csv(SPINE_CSV)
    for col in ("image", "mask"):
        df[col] = [str((SPINE_CSV.parent / p).resolve()) for p in df[col]]
    order = df.groupby("image").cumcount()  # first slice of every volume, then the second, ...
    return df.assign(_o=order).sort_values(["_o", "image"]).head(n)[["image", "slice_index", "mask", "roi_label"]]


def xray_rows(n: int) -> pd.DataFrame:
    return limit_per_split(manifest_from_folder_tree(XRAYS), n).split("train").df.head(n)[["image"]]


def forget_memos() -> None:
    """Empty the per-process memos of N4 fields, volumes and file digests (private, cleared here only): each
    repeat must do the work the first run of a fresh process does."""
    recipes._N4_MEMO.clear()
    recipes._N4_VOLUME_MEMO.clear()
    prepared._VOLUMES.clear()
    cache._DIGESTS.clear()


def cache_entries(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in folder.rglob("*.npz"):
        with np.load(path) as npz:
            out[path.name] = npz["image"].tobytes()
    return out


def preprocessing(name: str, table: pd.DataFrame, recipe_name: str, size: int, repeats: int,
                  clusters: dict[int, Cluster]) -> dict:
    """Items/s serially and on 1 and 2 Dask workers (fresh cache folder each run), and whether caches match."""
    rows = [row for _, row in table.iterrows()]
    times: dict[str, list[float]] = {"serial": [], "1 worker": [], "2 workers": []}
    identical = True
    for r in range(repeats + 1):  # repeat 0 warms up (imports and first reads in every worker)
        caches = {}
        order = list(times) if r % 2 == 0 else list(times)[::-1]
        for label in order:
            folder = Path(tempfile.mkdtemp(prefix=f"scale-{name}-"))
            recipe = Recipe.of(PreprocessConfig(recipe=recipe_name), size, 1, folder)
            load = functools.partial(prepare_row, recipe)
            forget_memos()
            for cluster in clusters.values():
                cluster.client.run(forget_memos)
            t0 = time.perf_counter()
            if label == "serial":
                fill_serially(rows, load, "error")
            else:
                fill_on_cluster(clusters[1 if label == "1 worker" else 2], rows, load, "error")
            if r:
                times[label].append(time.perf_counter() - t0)
            caches[label] = cache_entries(folder)
        identical &= caches["serial"] == caches["1 worker"] == caches["2 workers"] and len(caches["serial"]) == len(rows)
    n = len(rows)
    print(f"\n{name}: {n} items ({recipe_name}, {size}px), {repeats} interleaved repeats after a warm-up")
    for label, ts in times.items():
        print(f"  {label:9s}: {n / min(ts):7.2f} items/s at best, {n / statistics.median(ts):7.2f} median "
              f"({min(ts) / n * 1000:.0f} ms/item; runs {['%.2f' % t for t in ts]} s)")
    s, one, two = (statistics.median(times[k]) for k in times)
    ms, mone, mtwo = (min(times[k]) for k in times)
    print(f"  speed-up 2 workers vs serial: {ms / mtwo:.2f}x of the minima, {s / two:.2f}x of the medians; "
          f"vs 1 worker: {mone / mtwo:.2f}x / {one / two:.2f}x")
    print(f"  every cache entry bit-identical to the serial run's: {'yes' if identical else 'NO'}")
    return {"serial_s_per_item": ms / n, "efficiency_2": (mone / mtwo) / 2}


def bare_epoch(model, loader, opt) -> tuple[float, int]:
    model.train()
    t0, steps = time.perf_counter(), 0
    for x, y, _ in loader:
        loss = F.binary_cross_entropy_with_logits(model(x), y.view(-1, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return time.perf_counter() - t0, steps


def xray_config(tmp: Path, size: int, storage: str):
    return config_from_dict({
        "output_dir": str(tmp), "name": "scale", "data": {"image_size": size, "channels": 1, "storage": storage},
        "preprocess": {"cache_dir": str(tmp / "cache")},
        "train": {"batch_size": 32, "class_balance": "none"}})


def repeated(manifest, times: int):
    return manifest.with_df(pd.concat([manifest.df] * times, ignore_index=True))


def training_step_time(images: int, size: int, repeats: int) -> None:
    """Per-step time of a bare training epoch from memory and from the shard, interleaved."""
    tmp = Path(tempfile.mkdtemp(prefix="scale-train-"))
    manifest = limit_per_split(manifest_from_folder_tree(XRAYS), images).split("train")
    loaders = {s: make_loader(dataset_for(manifest, xray_config(tmp, size, s), progress=False),
                              xray_config(tmp, size, s), train=True) for s in ("memory", "stream")}
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", in_chans=1, num_classes=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times: dict[str, list[float]] = {"memory": [], "stream": []}
    for r in range(repeats + 1):  # repeat 0 warms up
        for s in (("memory", "stream") if r % 2 == 0 else ("stream", "memory")):
            seconds, steps = bare_epoch(model, loaders[s], opt)
            if r:
                times[s].append(seconds / steps)
    print(f"\ntraining step time: {len(manifest.df)} chest X-rays at {size}px, resnet10t, batch 32, "
          f"{torch.get_num_threads()} threads, {repeats} interleaved repeats after a warm-up pair")
    for s, ts in times.items():
        print(f"  {s:6s}: min {min(ts) * 1000:.1f} ms/step, median {statistics.median(ts) * 1000:.1f}")
    pairs = [b / a for a, b in zip(times["memory"], times["stream"])]
    print(f"  ratio stream / memory: {min(times['stream']) / min(times['memory']):.3f} of the minima, "
          f"{statistics.median(times['stream']) / statistics.median(times['memory']):.3f} of the medians, "
          f"{statistics.median(pairs):.3f} median of the pairs; target <= {TARGET_STREAM}")


def rss_child(storage: str, times: int, images: int, size: int, tmp: str) -> None:
    """In a fresh process: resident memory after imports, and its highest value while the dataset is built and one
    pass of its loader runs (sampled after every batch), in kB."""
    process = psutil.Process()
    manifest = repeated(limit_per_split(manifest_from_folder_tree(XRAYS), images).split("train"), times)
    cfg = xray_config(Path(tmp), size, storage)
    base = process.memory_info().rss
    loader = make_loader(dataset_for(manifest, cfg, progress=False), cfg, train=True)
    peak = process.memory_info().rss
    for _ in loader:
        peak = max(peak, process.memory_info().rss)
    print(f"{base // 1024} {peak // 1024} {len(manifest.df)}")


def peak_rss(images: int, size: int) -> None:
    tmp = tempfile.mkdtemp(prefix="scale-rss-")
    print(f"\nresident memory added by the dataset (one fresh process each: built, then one pass of its loader), "
          f"{images} chest X-rays at {size}px repeated:")
    for times in (1, 4):
        line = []
        for storage in ("memory", "stream"):
            out = subprocess.run([sys.executable, __file__, "--rss-child", storage, str(times), str(images), str(size),
                                  tmp], capture_output=True, text=True, check=True).stdout.split()
            base, peak, n = (int(v) for v in out[-3:])
            line.append(f"{storage} +{(peak - base) / 1024:.0f} MB")
        data_mb = n * size * size * 4 / 1e6
        print(f"  {times}x ({n} items, {data_mb:.0f} MB of float32 inputs): " + ", ".join(line))


def ct_costs() -> dict:
    """Per-file seconds on the shared head CT series: fingerprint (audit) and preparation (series read, bone window,
    sagittal reformat, a 2.5D input of three slices), with the in-process caches cleared."""
    files = sorted(CT_SERIES.glob("*.dcm"))
    forget_memos()
    t0 = time.perf_counter()
    for f in files:
        file_digest(f)
        fingerprint(str(f))
    audit = (time.perf_counter() - t0) / len(files)
    folder = Path(tempfile.mkdtemp(prefix="scale-ct-"))
    recipe = Recipe.of(PreprocessConfig(recipe="ct-sagittal"), 224, 1, folder)
    t0 = time.perf_counter()
    for index in (100, 101, 102):
        load_prepared(Row(str(CT_SERIES), index), recipe)
    prepare = (time.perf_counter() - t0) / len(files)
    return {"audit": audit, "prepare": prepare, "files": len(files)}


def estimate(ct: dict, efficiency: float) -> None:
    """Wall time and cluster size for the cohort from the per-file costs, at the measured parallel efficiency and at
    1.0 (every worker on its own idle core; the 2-core machine the figures come from is shared with other jobs)."""
    per_file = ct["audit"] + ct["prepare"]
    core_hours = COHORT_FILES * per_file / 3600
    measured = min(max(efficiency, 0.1), 1.0)
    print(f"\nestimate for a {COHORT_FILES:,}-file CT cohort (per file, measured on the {ct['files']}-file head CT "
          f"series: fingerprint {ct['audit'] * 1000:.0f} ms + preparation {ct['prepare'] * 1000:.0f} ms):")
    print(f"  {core_hours:.0f} core-hours of work; wall time at parallel efficiency {measured:.0%} (measured here, "
          f"2 workers on a shared 2-core machine) / 100% (a core per worker):")
    for cores in (1, 16, 64, 256):
        low = core_hours / (cores * (measured if cores > 1 else 1))
        print(f"  {cores:4d} cores: {low:8.1f} h / {core_hours / cores:8.1f} h")
    nodes = [math.ceil(core_hours / (8 * eff * 16)) for eff in (measured, 1.0)]
    print(f"  to finish in one 8-hour night: {nodes[0]} / {nodes[1]} node(s) of 16 cores; training inputs "
          f"(2.5D 3x224x224 float16, one per file) {COHORT_FILES * 3 * 224 * 224 * 2 / 1e9:.0f} GB -> data.storage: "
          "stream")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes on 2 busy cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars (workers inherit it) would bury the figures
    if args.rss_child:
        storage, times, images, size, tmp = args.rss_child
        rss_child(storage, int(times), int(images), int(size), tmp)
        return 0
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found")
        return 0
    spine_n, xray_n, train_n, train_size, rss_n = (4, 96, 128, 64, 512) if args.quick else (11, 400, 512, 128, 1000)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {'quick' if args.quick else 'full'} mode")
    t0 = time.perf_counter()
    with Cluster(workers=1) as one:
        t1 = time.perf_counter()
        with Cluster(workers=2) as two:
            print(f"local Dask cluster start-up: {t1 - t0:.1f} s (1 worker), {time.perf_counter() - t1:.1f} s (2)")
            clusters = {1: one, 2: two}
            spine = preprocessing("spine MRI, N4 + crop", spine_rows(spine_n), "mri-ovcf", 128, args.repeats,
                                  clusters)
            preprocessing("chest X-rays, CLAHE + unsharp", xray_rows(xray_n), "radiograph", 224, args.repeats,
                          clusters)
    training_step_time(train_n, train_size, max(args.repeats, 3))
    peak_rss(rss_n, 128)
    estimate(ct_costs(), spine["efficiency_2"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
