"""Audit benchmark on the 5840 Kermany chest X-rays: speed (cold and cached), near-duplicate recall on planted copies,
false positives on clean pairs; baseline: imagehash's 64-bit pHash (threshold 10) on the same images.

Run: OMP_NUM_THREADS=1 python bench/audit_near_duplicates.py [--data ../shared/data] [--planted 200]
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (before anything that may import torchvision)
import cv2
import imagehash
import numpy as np
from PIL import Image

from medfit.audit import audit_manifest, compute_fingerprints
from medfit.audit.duplicates import NEAR_THRESHOLD, near_pairs
from medfit.audit.fingerprint import grey_float, perceptual_hash, unpack_phash
from medfit.data.manifest import manifest_from_folder_tree
from medfit.io import read_image


def jpeg(a, q):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf))


def crop(a, f):
    h, w = a.shape[:2]
    dy, dx = int(h * f), int(w * f)
    return a[dy:h - dy, dx:w - dx]


def gamma(a, g):
    return (255 * (np.arange(256) / 255.0) ** g).astype(np.uint8)[a]


TRANSFORMS = {
    "resize 160": lambda a: cv2.resize(a, (160, 160), interpolation=cv2.INTER_AREA),
    "resize 512x400": lambda a: cv2.resize(a, (512, 400), interpolation=cv2.INTER_CUBIC),
    "jpeg q50": lambda a: jpeg(a, 50),
    "jpeg q20": lambda a: jpeg(a, 20),
    "contrast 0.7x+40": lambda a: np.clip(a * 0.7 + 40, 0, 255).astype(np.uint8),
    "gamma 0.7": lambda a: gamma(a, 0.7),
    "gamma 1.5": lambda a: gamma(a, 1.5),
    "crop 3%/side": lambda a: crop(a, 0.03),
    "crop 5%/side": lambda a: crop(a, 0.05),
    "crop 8%/side": lambda a: crop(a, 0.08),
    "crop 4% top+left": lambda a: a[int(a.shape[0] * 0.04):, int(a.shape[1] * 0.04):],
    "crop 4% top only": lambda a: a[int(a.shape[0] * 0.04):],
    "crop4+resize+jpeg+gamma": lambda a: jpeg(cv2.resize(crop(gamma(a, 0.8), 0.04), (180, 180),
                                                         interpolation=cv2.INTER_AREA), 60),
}


def distance(h_a: np.ndarray, h_b: np.ndarray) -> int:
    """The audit's pair distance: reference view of one vs the closest zoom of the other, both ways."""
    return int(min((h_a[0] != h_b).sum(axis=1).min(), (h_b[0] != h_a).sum(axis=1).min()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--planted", type=int, default=200)
    args = parser.parse_args()
    manifest = manifest_from_folder_tree(Path(args.data) / "chest-xray-pneumonia-224",
                                         r"((?:NORMAL2-)?IM-\d+|person\d+)", patient_scope="split")
    df = manifest.df
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        result = audit_manifest(df, ["label"], manifest.class_names, "binary", cache_dir=cache)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        audit_manifest(df, ["label"], manifest.class_names, "binary", cache_dir=cache)
        cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    for ref in df["image"]:
        read_image(ref)
    read_only = time.perf_counter() - t0
    print(f"full audit of {len(df)} images: cold {cold:.1f} s {result.timing}, cached {cached:.1f} s; "
          f"decoding alone (1 process) {read_only:.1f} s; cold/decode ratio {cold / read_only:.2f}")
    print(result.summary)

    records = compute_fingerprints(df["image"].tolist())
    hashes = np.stack([unpack_phash(h) for h in records["phash"]])
    pixel = records["pixel_hash"].to_numpy()
    pairs = [(i, j, d) for i, j, d in near_pairs(hashes, threshold=48) if pixel[i] != pixel[j]]
    total = len(df) * (len(df) - 1) // 2
    print(f"clean pairs (distinct pixels) of {total}: " + ", ".join(
        f"<= {t}: {sum(d <= t for *_, d in pairs)}" for t in (24, 28, 32, 36, 40, 44, 48)))
    flagged = sum(d <= NEAR_THRESHOLD for *_, d in pairs)
    print(f"false-positive rate at threshold {NEAR_THRESHOLD}: {flagged}/{total} = {flagged / total:.2e}")

    p_hashes = [imagehash.phash(Image.open(ref).convert("L")) for ref in df["image"]]
    bits = np.stack([h.hash.ravel() for h in p_hashes]).astype(np.float32) * 2 - 1
    dist = (64 - bits @ bits.T) / 2
    iu = np.triu_indices(len(df), 1)
    distinct = pixel[iu[0]] != pixel[iu[1]]
    fp_base = int(((dist[iu] <= 10) & distinct).sum())
    print(f"baseline imagehash.phash (64 bits, <= 10): false positives {fp_base}/{total} = {fp_base / total:.2e}")

    rng = np.random.default_rng(0)
    picks = rng.choice(len(df), args.planted, replace=False)
    print(f"planted copies of {args.planted} images: max / 95th pct distance, found at {NEAR_THRESHOLD}; baseline found")
    for name, fn in TRANSFORMS.items():
        ours, base = [], []
        for i in picks:
            src = read_image(df.at[i, "image"])
            copy = fn(src)
            ours.append(distance(hashes[i], perceptual_hash(grey_float(copy))))
            base.append(p_hashes[i] - imagehash.phash(Image.fromarray(copy).convert("L")))
        ours, base = np.array(ours), np.array(base)
        print(f"  {name:26s} {ours.max():3d} / {np.percentile(ours, 95):5.1f}  found {np.mean(ours <= NEAR_THRESHOLD):6.1%}"
              f"   baseline found {np.mean(base <= 10):6.1%}")


if __name__ == "__main__":
    main()
