"""MedMNIST ``.npz`` entries addressed as ``<file.npz>::<key>::<index>``."""
from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from medfit.errors import DataError

SEPARATOR = "::"

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
                        raise DataError(f"{path}: no array {key!r} (has {', '.join(npz.files)})")
                    arr = npz[key]
            except DataError:
                raise
            except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
                raise DataError(f"{path}: not a readable .npz file ({exc}); re-download it") from None
            _ARRAYS[cache_key] = arr
    return arr


def read_npz_entry(ref: str) -> np.ndarray:
    """The image at ``<file.npz>::<key>::<index>`` (HxW, HxWxC or DxHxW as stored)."""
    path, key, index = parse_npz_ref(ref)
    arr = load_npz_array(path, key)
    if not -len(arr) <= index < len(arr):
        raise DataError(f"{ref}: index {index} out of range ({key} has {len(arr)} entries)")
    return arr[index]


def clear_npz_cache() -> None:
    """Forget the decoded arrays (tests, long-lived processes)."""
    with _LOCK:
        _ARRAYS.clear()
