"""Per-image fingerprints for the audit: exact pixel hash, multi-zoom perceptual hash, acquisition metadata.

The perceptual hash is a DCT hash (the 16x16 lowest frequencies of a 32x32 grey thumbnail, minus the DC term, each bit
"coefficient above the median": 255 bits). A linear contrast change scales every coefficient alike, so the bits do not
move; resizing and JPEG re-encoding barely touch the lowest frequencies. Crops are what break a plain DCT hash, so each
image is hashed in 13 views: the reference view trims 8 % from every side; four centred zooms trim 9.3-13 %; four
views trim 4 % more off one side and four off one corner. A copy with up to ~5 % trimmed from every side, or ~4 % off
one side or corner, then matches one view of its original (threshold and measured rates: ``duplicates.NEAR_THRESHOLD``).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from medfit.errors import DataError
from medfit.io import is_volume_ref, read_image
from medfit.io.dicom import read_dataset
from medfit.io.images import is_image_file, open_image
from medfit.io.medmnist import is_npz_ref
from medfit.preprocess.cache import array_digest


def _views(base: float = 0.08, zooms=(0.97, 0.94, 0.91, 0.88), extra: float = 0.04) -> list[list[float]]:
    """Trims (top, bottom, left, right) of each hashed view: the reference, centred zooms, one side, one corner."""
    views = [[base] * 4]
    views += [[round((1 - (1 - 2 * base) * z) / 2, 4)] * 4 for z in zooms]
    views += [[base + extra * (k == side) for k in range(4)] for side in range(4)]
    views += [[base + extra * (k in corner) for k in range(4)] for corner in ((0, 2), (0, 3), (1, 2), (1, 3))]
    return views


HASH_PARAMS = {"work": 160, "thumb": 32, "dct": 16, "views": _views(), "version": 4}
HASH_BITS = HASH_PARAMS["dct"] ** 2 - 1
# the second check of a near-duplicate candidate pair: grey images kept at ``base`` px, compared as ``size`` px views
SIMILARITY_PARAMS = {"base": 128, "size": 64, "version": 1}


def grey_float(arr: np.ndarray) -> np.ndarray:
    """HxW or HxWxC pixels as one HxW float32 channel (luma for 8-bit colour, else the channel mean)."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[2] in (3, 4):
        arr = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
    elif arr.ndim == 3:
        arr = arr[..., :3].astype(np.float32).mean(axis=-1)
    if arr.ndim != 2:
        raise DataError(f"cannot audit an image of shape {arr.shape}: expected HxW or HxWxC")
    grey = arr.astype(np.float32, copy=False)
    return np.nan_to_num(grey, copy=False) if arr.dtype.kind == "f" else grey


def colour_mode(arr: np.ndarray) -> str:
    """How the pixels are stored: 'grey', 'grey as RGB' (equal channels) or 'colour'."""
    if arr.ndim == 2 or arr.shape[2] == 1:
        return "grey"
    rgb = arr[::4, ::4, :3]  # every 4th pixel is plenty to tell
    spread = np.abs(rgb.astype(np.int16 if rgb.dtype == np.uint8 else np.float32) - rgb[..., :1]).max(axis=-1)
    return "grey as RGB" if float(np.percentile(spread, 99)) <= 8 else "colour"  # JPEG leaves a little chroma noise


def has_pixels(arr: np.ndarray) -> bool:
    """False for an image without a single finite pixel (all NaN/inf): nothing to audit or train on."""
    return arr.dtype.kind != "f" or bool(np.isfinite(arr).any())


def intensity_stats(grey: np.ndarray) -> dict:
    """Mean, standard deviation, 1st and 99th percentile of the grey values (exact, from a histogram for 8-bit)."""
    if grey.size == 0:
        return {"mean": 0.0, "std": 0.0, "p01": 0.0, "p99": 0.0}
    values = grey if grey.size <= 65536 else grey[::2, ::2]  # large images: every other pixel is plenty
    if np.all(values == np.round(values)) and 0 <= values.min() and values.max() <= 255:
        hist = np.bincount(values.astype(np.int64).ravel(), minlength=256).astype(np.float64)
        levels = np.arange(len(hist))
        n = hist.sum()
        mean = float((hist * levels).sum() / n)
        std = float(np.sqrt(max((hist * (levels - mean) ** 2).sum() / n, 0.0)))
        cdf = np.cumsum(hist) / n
        lo, hi = float(np.searchsorted(cdf, 0.01)), float(np.searchsorted(cdf, 0.99))
    else:
        mean, std = float(values.mean()), float(values.std())
        lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    return {"mean": mean, "std": std, "p01": lo, "p99": hi}


def _area_weights(size: int, start: float, stop: float, out: int) -> np.ndarray:
    """(out, size) box-filter weights resampling input pixels [start, stop) into ``out`` equal bins."""
    edges = start + (stop - start) * np.arange(out + 1) / out
    pixels = np.arange(size)
    overlap = np.clip(np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


@lru_cache(maxsize=32)
def _view_operators(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For an h x w image: rows (views*k, h) and columns (views, w, k) of "crop view, box-resize to a thumbnail,
    keep the k lowest DCT frequencies", so that a view's coefficients are rows_v @ image @ cols_v."""
    thumb, k = HASH_PARAMS["thumb"], HASH_PARAMS["dct"]
    u, x = np.arange(k)[:, None], np.arange(thumb)[None, :]
    dct = np.sqrt((1 + (u > 0)) / thumb) * np.cos(np.pi * (2 * x + 1) * u / (2 * thumb))  # orthonormal DCT-II rows
    rows, cols = [], []
    for top, bottom, left, right in HASH_PARAMS["views"]:
        rows.append(dct @ _area_weights(h, h * top, h * (1 - bottom), thumb))
        cols.append((dct @ _area_weights(w, w * left, w * (1 - right), thumb)).T)
    return np.concatenate(rows).astype(np.float32), np.stack(cols).astype(np.float32)


def perceptual_hash(grey: np.ndarray) -> np.ndarray:
    """The multi-view DCT hash of a grey image: bool array (views, 255), row 0 the reference view."""
    work, k = HASH_PARAMS["work"], HASH_PARAMS["dct"]
    if min(grey.shape) > work:  # stretch to a square first: the hash stretches every view to a square anyway
        grey = cv2.resize(grey, (work, work), interpolation=cv2.INTER_AREA)
    rows, cols = _view_operators(*grey.shape)
    views = len(cols)
    coeffs = ((rows @ grey).reshape(views, k, -1) @ cols).reshape(views, k * k)[:, 1:]
    return coeffs > np.median(coeffs, axis=1, keepdims=True)


def similarity_base(grey: np.ndarray) -> np.ndarray:
    """The grey image stretched to a small uint8 square (min-max scaled): what ``view_similarity`` compares."""
    base = SIMILARITY_PARAMS["base"]
    small = cv2.resize(grey, (base, base), interpolation=cv2.INTER_AREA if min(grey.shape) >= base else cv2.INTER_LINEAR)
    lo, hi = float(small.min()), float(small.max())
    return np.round((small - lo) * (255.0 / (hi - lo)) if hi > lo else small * 0).astype(np.uint8)


def similarity_view(base: np.ndarray, view: int) -> np.ndarray:
    """One of the hash's views of a ``similarity_base`` image as a (size, size) float32 thumbnail."""
    n, size = base.shape[0], SIMILARITY_PARAMS["size"]
    top, bottom, left, right = HASH_PARAMS["views"][view]
    rows = _area_weights(n, n * top, n * (1 - bottom), size).astype(np.float32)
    cols = _area_weights(n, n * left, n * (1 - right), size).astype(np.float32)
    return rows @ base.astype(np.float32) @ cols.T


def _file_meta(ref: str, arr: np.ndarray) -> dict:
    """Format, photometric interpretation, bit depth, modality and DICOM UIDs as the file states them."""
    meta = {"format": "", "photometric": "", "bit_depth": int(arr.dtype.itemsize * 8), "modality": "",
            "study_uid": "", "series_uid": "", "sop_uid": ""}
    if is_npz_ref(ref):
        meta.update(format="NPZ", photometric="RGB" if arr.ndim == 3 else "L")
        return meta
    path = ref.rpartition("::")[0] if "::" in ref else ref
    if is_image_file(path):
        with open_image(path) as img:
            meta.update(format=str(img.format or Path(path).suffix.lstrip(".").upper()), photometric=img.mode)
        return meta
    if path.lower().endswith((".nii", ".nii.gz")):
        meta.update(format="NIFTI", photometric="L")
        return meta
    dicom = next(iter(sorted(Path(path).iterdir())), None) if Path(path).is_dir() else Path(path)
    ds = read_dataset(dicom, pixels=False) if dicom is not None else None
    if ds is not None:
        meta.update(format="DICOM", photometric=str(ds.get("PhotometricInterpretation", "")),
                    bit_depth=int(ds.get("BitsStored", meta["bit_depth"])), modality=str(ds.get("Modality", "")),
                    study_uid=str(ds.get("StudyInstanceUID", "")),
                    series_uid=str(ds.get("SeriesInstanceUID", "")),
                    sop_uid="" if is_volume_ref(path) else str(ds.get("SOPInstanceUID", "")))
    return meta


def fingerprint(ref: str) -> dict:
    """Everything the audit needs from one image: pixel hash, perceptual hash (packed hex), size, metadata, intensity."""
    ref = str(ref)
    arr = read_image(ref)
    if not has_pixels(arr):
        return {"pixel_hash": "", "phash": "", "no_pixels": True}
    grey = grey_float(arr)
    record = {
        "pixel_hash": array_digest(arr),
        "phash": np.packbits(perceptual_hash(grey), axis=1).tobytes().hex(),
        "height": int(arr.shape[0]),
        "width": int(arr.shape[1]),
        "channels": int(arr.shape[2]) if arr.ndim == 3 else 1,
        "colour": colour_mode(arr),
        **intensity_stats(grey),
    }
    record.update(_file_meta(ref, arr))
    return record


def unpack_phash(hex_string: str) -> np.ndarray:
    """The bool (views, 255) hash back from its packed hex form."""
    zooms = len(HASH_PARAMS["views"])
    packed = np.frombuffer(bytes.fromhex(hex_string), dtype=np.uint8).reshape(zooms, -1)
    return np.unpackbits(packed, axis=1)[:, :HASH_BITS].astype(bool)


def fingerprint_many(refs: list[str]) -> list[dict]:
    """Fingerprints of several images (one task of the process pool)."""
    return [fingerprint(ref) for ref in refs]
