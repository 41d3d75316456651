"""MedMNIST ``.npz`` entries addressed as ``<file.npz>::<key>::<index>``."""
from __future__ import annotations

import os
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np

from medfit.errors import DataError
from medfit.io.checks import describe_content, first_line, require_finite, sniff

SEPARATOR = "::"
# What np.load raises on a damaged archive: a cut-off or foreign file, a corrupt member, a member with pickled objects.
NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError)

# (path, mtime_ns, key) -> array; the whole key is decoded once per process so that 5000 reads are fast.
_ARRAYS: dict[tuple[str, int, str], np.ndarray] = {}
_LOCK = threading.Lock()


def is_npz_ref(ref: str) -> bool:
    """True for a ``<file.npz>::<key>::<index>`` reference."""
    return SEPARATOR in ref and ref.split(SEPARATOR, 1)[0].lower().endswith(".npz")


def make_npz_ref(path: str | Path, key: str, index: int) -> str:
    """The reference string for one entry of a MedMNIST array."""
    return f"{path}{SEPARATOR}{key}{SEPARATOR}{int(index)}"


def parse_npz_ref(ref: str) -> tuple[str, str, int]:
    """Split ``<file.npz>::<key>::<index>`` into (path, key, index)."""
    parts = ref.split(SEPARATOR)
    if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
        raise DataError(f"{ref}: expected a MedMNIST reference <file.npz>::<key>::<index>, e.g. x.npz::train_images::0")
    return parts[0], parts[1], int(parts[2])


def _unreadable(path, exc: Exception) -> DataError:
    found = sniff(path)
    if found is None or found[0] != "zip archive":
        return DataError(f"{path}: not an .npz file but {describe_content(path)}; point to a MedMNIST .npz file")
    return DataError(f"{path}: not a readable .npz file, truncated or damaged ({first_line(exc)}); "
                     "re-download or re-save it")


def npz_keys(path: str | Path) -> list[str]:
    """The array names in an ``.npz`` file; a missing or damaged file is a DataError."""
    if not Path(path).is_file():
        raise DataError(f"{path}: MedMNIST file not found; check data.root")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except NPZ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def load_npz_array(path: str, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, decoded once and cached per process (keyed by path and mtime)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        raise DataError(f"{path}: MedMNIST file not found; check data.root") from None
    cache_key = (os.path.abspath(path), mtime, key)
    arr = _ARRAYS.get(cache_key)
    if arr is not None:
        return arr
    with _LOCK:
        arr = _ARRAYS.get(cache_key)
        if arr is None:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    if key not in npz.files:
                        raise DataError(f"{path}: no array {key!r} (has {', '.join(npz.files)}); check the reference")
                    arr = npz[key]
            except DataError:
                raise
            except NPZ_ERRORS as exc:
                raise _unreadable(path, exc) from None
            _ARRAYS[cache_key] = arr
    return arr


def npz_shape(path: str | Path, key: str) -> tuple[int, ...]:
    """The shape of one array of an ``.npz`` file from its header, without decoding the data."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return tuple(read(fh)[0])
    except NPZ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def read_npz_labels(path: str | Path, split: str) -> np.ndarray:
    """``<split>_labels`` as (N, L) int64, checked: one row per image, whole numbers >= 0."""
    key = f"{split}_labels"
    labels = np.asarray(load_npz_array(str(path), key))
    labels = labels.reshape(len(labels), -1)
    n_images = npz_shape(path, f"{split}_images")[0]
    if len(labels) != n_images:
        raise DataError(f"{path}: {key} has {len(labels)} rows but {split}_images has {n_images} images; "
                        "re-download or re-save the file")
    require_finite(labels, f"{path}::{key}")
    if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0):
        raise DataError(f"{path}: {key} must hold whole numbers >= 0 (found {labels.min():g}..{labels.max():g}, "
                        "fractional or negative); re-download or re-save the file")
    return labels.astype(np.int64)


def read_npz_entry(ref: str) -> np.ndarray:
    """The image at ``<file.npz>::<key>::<index>`` (HxW, HxWxC or DxHxW as stored)."""
    path, key, index = parse_npz_ref(ref)
    arr = load_npz_array(path, key)
    if not -len(arr) <= index < len(arr):
        raise DataError(f"{ref}: index {index} out of range ({key} has {len(arr)} entries); check the reference")
    return require_finite(arr[index], ref)


def clear_npz_cache() -> None:
    """Forget the decoded arrays (tests, long-lived processes)."""
    with _LOCK:
        _ARRAYS.clear()
