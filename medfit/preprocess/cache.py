"""On-disk cache of prepared images keyed by source content hash, operation parameters and the medfit version.

Entries are uncompressed ``.npz`` files holding the image, the key it was stored under and the digest of its content:
the zip CRC catches corrupt bytes, the key an entry moved from another image, the digest values rewritten after the
fact; such entries are rebuilt, never used. They are written to a temporary file and moved into place with
``os.replace``, so concurrent loader workers never see half-written entries.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

import medfit

log = logging.getLogger(__name__)

_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes, or of every file in a folder (names and bytes); memoised by size and mtime."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])
    digest = _DIGESTS.get(stamp)
    if digest is None:
        h = hashlib.sha1()
        for p in files:
            h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        digest = _DIGESTS[stamp] = h.hexdigest()
    return digest


def array_digest(arr: np.ndarray) -> str:
    """SHA-1 of an array's bytes, shape and dtype."""
    h = hashlib.sha1(np.ascontiguousarray(arr).tobytes())
    h.update(f"{arr.shape}{arr.dtype}".encode())
    return h.hexdigest()


def cache_key(source_digest: str, params: dict) -> str:
    """Key for one prepared image: source content, every parameter that shapes the result, and the medfit version."""
    blob = json.dumps({"source": source_digest, "params": params, "medfit": medfit.__version__},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class PreparedCache:
    """A folder of prepared images, ``<dir>/<key[:2]>/<key>.npz``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, shape: tuple[int, ...], unit: bool = True) -> np.ndarray | None:
        """The cached array, or None when missing or not trustworthy (corrupt, wrong shape, not finite, outside [0, 1]
        when ``unit``: z-scored images are checked for finiteness only)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                arr, stored_key, digest = npz["image"], str(npz["key"]), str(npz["digest"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("cache entry %s is corrupt (%s); rebuilding it", path, exc)
            return None
        if stored_key != key or digest != array_digest(arr):
            log.warning("cache entry %s does not hold what was stored under its key (%s); rebuilding it", path,
                        "another key" if stored_key != key else "content digest differs")
            return None
        if arr.shape != tuple(shape) or arr.dtype != np.float32 or not np.all(np.isfinite(arr)) \
                or unit and (float(arr.min(initial=0.0)) < 0.0 or float(arr.max(initial=0.0)) > 1.0):
            log.warning("cache entry %s does not hold a valid %s image; rebuilding it", path, shape)
            return None
        return arr

    def put(self, key: str, arr: np.ndarray) -> Path:
        """Store ``arr`` with its key and content digest, atomically (temporary file in the same folder, then
        ``os.replace``)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, image=arr, key=np.array(key), digest=np.array(array_digest(arr)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
